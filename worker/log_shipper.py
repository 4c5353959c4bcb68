"""LogShipper: a datum attempt's live logs, stored as user code prints them.

The runtime's read loop hands output chunks to `write` (a `runtime.LogSink`), which only splits
lines and appends them to a bounded queue: user code never waits on storage. A thread ships the
queue every HERD_LOG_FLUSH_SECONDS as one create-only segment (`<attempt>.<seq>`, numbered from
0 per attempt), so a worker killed mid-datum leaves every segment it stored and no other, and
the retry (a new attempt number) writes its own: no line is lost to a rewrite or shown twice.
Bounded per attempt (scheduler.logs.HeadTail): the head is stored live, the tail when the
attempt ends, with a note of what was cut between; a full queue drops lines and says how many.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from scheduler.logs import (
    HERD_STREAM,
    HeadTail,
    LineSplitter,
    cut_marker,
    dropped_marker,
    encode_segment,
    segment_record,
)
from storage.errors import HerdError
from worker.runtime import LOG_TAIL_BYTES

log = logging.getLogger(__name__)

QUEUE_BYTES = 4 * 1024 * 1024  # lines waiting for the shipper; past it they are dropped (and counted)
PROBE_BYTES = 256  # how much of the last bytes received finds them again in a runtime's tail
SEGMENT_TRIES = 3  # a taken segment number (never expected: one holder per attempt) moves to the next


@dataclass(frozen=True)
class LogLimits:
    flush_seconds: float = 0.5
    head_bytes: int = 1024 * 1024
    tail_bytes: int = 1024 * 1024
    queue_bytes: int = QUEUE_BYTES


def utc_stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# (attempt's segment number, JSON lines) -> created? (scheduler.ledger put_log_segment, bound)
StoreSegment = Callable[[int, bytes], bool]


class LogShipper:
    """Implements `runtime.LogSink` for one datum attempt; `close` stores the rest."""

    def __init__(
        self, store: StoreSegment, worker: str, attempt: int, limits: LogLimits = LogLimits(),
        clock: Callable[[], str] = utc_stamp,
    ) -> None:
        self._store, self._worker, self._attempt = store, worker, attempt
        self._limits, self._clock = limits, clock
        self._lock = threading.Lock()  # the queue, between the runtime's thread and the shipper's
        self._ship_lock = threading.Lock()  # one flush at a time, segments in order
        self._queue: list[tuple[str, str, str]] = []  # (timestamp, stream, message)
        self._queued_bytes = 0
        self._dropped = 0
        self._splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}
        self._received = {"stdout": bytearray(), "stderr": bytearray()}  # last bytes, for catch_up
        self._cut: HeadTail[dict[str, Any]] = HeadTail(limits.head_bytes, limits.tail_bytes)
        self._seq = 0
        self._lost = 0  # lines a failed store took with it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.segments = 0  # stored so far (tests, metrics)

    # runtime side -------------------------------------------------------------------------
    def write(self, stream: str, chunk: bytes) -> None:
        """LogSink: a chunk of `stream` as read; returns at once."""
        if stream not in self._splitters or not chunk:
            return
        stamp = self._clock()
        with self._lock:
            if self._closed:
                return
            received = self._received[stream]
            received += chunk
            del received[:-LOG_TAIL_BYTES]
            for message in self._splitters[stream].feed(chunk):
                self._enqueue(stamp, stream, message)
            if self._thread is None:  # a silent datum costs no thread
                self._thread = threading.Thread(target=self._run, name="herd-log-shipper", daemon=True)
                self._thread.start()

    def catch_up(self, stream: str, tail: bytes) -> None:
        """What a runtime's final tail of `stream` holds that never reached `write`: a message of
        herd's own appended to it (a sandbox that could not start), or what a polling runtime
        had not read yet. The tail is the stream's last bytes: past the last bytes received,
        or all of it when they are not in it."""
        with self._lock:
            received = bytes(self._received[stream][-PROBE_BYTES:]) if stream in self._received else b""
        if not tail or (received and tail.endswith(received[-len(tail):])):
            return
        at = tail.rfind(received) if received else -1
        rest = tail[at + len(received):] if at >= 0 else tail
        if rest:
            self.write(stream, rest)

    def _enqueue(self, stamp: str, stream: str, message: str) -> None:
        size = len(message) + 1
        if self._queued_bytes + size > self._limits.queue_bytes:
            self._dropped += 1
            return
        self._queue.append((stamp, stream, message))
        self._queued_bytes += size

    # shipper side -------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self._limits.flush_seconds):
            self._flush(final=False)

    def close(self) -> None:
        """Stop the thread and store what is left: partial last lines, the held tail, notes."""
        with self._lock:
            if self._closed:
                return
            stamp = self._clock()
            for stream, splitter in self._splitters.items():
                for message in splitter.flush():
                    self._enqueue(stamp, stream, message)
            self._closed = True
            thread = self._thread
        self._stop.set()
        if thread is not None:
            thread.join()
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        with self._ship_lock:
            with self._lock:
                taken, self._queue, self._queued_bytes = self._queue, [], 0
                dropped, self._dropped = self._dropped, 0
            records: list[dict[str, Any]] = []
            if self._lost:
                records.append(self._note(f"{self._lost} lines lost: they could not be stored"))
                self._lost = 0
            for stamp, stream, message in taken:
                record = segment_record(stamp, stream, message, self._worker, self._attempt)
                records += self._cut.add(record, len(message.encode(errors="replace")) + 1)
            if dropped:
                records.append(self._note(dropped_marker(dropped)))
            if final:
                cut_bytes, cut_lines, tail = self._cut.finish()
                if cut_bytes:
                    records.append(self._note(cut_marker(cut_bytes, cut_lines)))
                records += tail
            if records:
                self._ship(records)

    def _note(self, message: str) -> dict[str, Any]:
        return segment_record(self._clock(), HERD_STREAM, message, self._worker, self._attempt)

    def _ship(self, records: list[dict[str, Any]]) -> None:
        data = encode_segment(records)
        try:
            for _ in range(SEGMENT_TRIES):
                seq, self._seq = self._seq, self._seq + 1
                if self._store(seq, data):
                    self.segments += 1
                    return
            raise HerdError(f"log segments {self._seq - SEGMENT_TRIES} to {self._seq - 1} exist already")
        except Exception as exc:  # noqa: BLE001 - storage down (or any fault): logs never fail a datum; the next segment says so
            self._lost += sum(1 for r in records if r["stream"] != HERD_STREAM)
            log.warning("cannot store the logs of attempt %d: %s", self._attempt, exc)
