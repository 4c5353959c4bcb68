"""Live logs, the pure part: segment records, their order, the head/tail cut, the filters.

A worker ships what user code prints as it runs, in create-only segments per datum attempt
(storage/layout.py `log_segment_key`), each a few JSON lines records. Readers (get-logs, -f)
list the segments, decode them and order them here. Summaries written by earlier herds (one
record per attempt with its `stdout`/`stderr` tails) are read as lines too. No I/O here.
"""

from __future__ import annotations

import heapq
import json
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

HERD_STREAM = "herd"  # herd's own notes among the lines: cuts, drops, why an attempt failed
STREAMS = ("stdout", "stderr", HERD_STREAM)
SUMMARY_SEQ = 1 << 62  # a summary's lines come after every segment of its attempt

T = TypeVar("T")


@dataclass(frozen=True)
class LogLine:
    """One line of a datum attempt, as get-logs shows it."""

    job: str
    datum: str
    attempt: int
    timestamp: str  # ISO 8601, UTC: when the worker read the line
    stream: str  # stdout | stderr | herd
    message: str
    worker: str = ""
    pipeline: str = ""
    seq: int = 0  # segment number within the attempt (SUMMARY_SEQ for a summary's lines)
    index: int = 0  # position within its segment

    def raw(self) -> dict[str, Any]:
        """The `--json` object: herd's names for a line."""
        return {
            "pipeline": self.pipeline, "job": self.job, "datum": self.datum, "attempt": self.attempt,
            "worker": self.worker, "timestamp": self.timestamp, "stream": self.stream, "message": self.message,
        }

    def log_message(self) -> dict[str, Any]:
        """Pachyderm's LogMessage fields (`--raw` prints them lowerCamel: pipelineName, jobId, ...);
        `user` is false for herd's own notes, and herd adds the stream and the attempt."""
        return {
            "pipeline_name": self.pipeline, "job_id": self.job, "worker_id": self.worker, "datum_id": self.datum,
            "master": False, "user": self.stream != HERD_STREAM, "ts": _zulu(self.timestamp), "message": self.message,
            "stream": self.stream, "attempt": self.attempt,
        }


def _zulu(timestamp: str) -> str:
    """RFC 3339 as jsonpb printed a Timestamp: UTC spelled `Z`."""
    return timestamp[: -len("+00:00")] + "Z" if timestamp.endswith("+00:00") else timestamp


def segment_record(timestamp: str, stream: str, message: str, worker: str, attempt: int) -> dict[str, Any]:
    return {"ts": timestamp, "stream": stream, "message": message, "worker": worker, "attempt": attempt}


def encode_segment(records: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() + b"\n" for r in records)


def decode_segment(data: bytes, job: str, datum: str, attempt: int, seq: int, pipeline: str = "") -> list[LogLine]:
    """A segment's lines; a record that is not one (a torn or foreign object) becomes a herd note
    naming it, so nothing is silently hidden and nothing crashes the reader."""
    lines: list[LogLine] = []
    for index, raw in enumerate(data.splitlines()):
        try:
            record = json.loads(raw)
            stream, message = str(record["stream"]), str(record["message"])
            timestamp, worker = str(record.get("ts", "")), str(record.get("worker", ""))
        except (ValueError, KeyError, TypeError):
            stream, message, timestamp, worker = HERD_STREAM, f"unreadable log record {index} in segment {seq}", "", ""
        if stream not in STREAMS:
            stream = HERD_STREAM
        lines.append(LogLine(job, datum, attempt, timestamp, stream, message, worker, pipeline, seq, index))
    return lines


def summary_lines(record: dict[str, Any], job: str, datum: str, attempt: int) -> list[LogLine]:
    """An attempt's summary: the `stdout`/`stderr` tails an earlier herd stored in it (none since
    live logs), then why the attempt failed, as a herd note."""
    timestamp, worker = str(record.get("ts", "")), str(record.get("worker", ""))
    pipeline = str(record.get("pipeline", ""))
    found: list[tuple[str, str]] = []
    for stream in ("stdout", "stderr"):
        text = record.get(stream)
        if isinstance(text, str):
            found += [(stream, line) for line in text.splitlines()]
    reason = record.get("reason")
    if reason:
        found.append((HERD_STREAM, f"datum {datum[:12]} attempt {attempt}: {reason}"))
    return [
        LogLine(job, datum, attempt, timestamp, stream, message, worker, pipeline, SUMMARY_SEQ, index)
        for index, (stream, message) in enumerate(found)
    ]


def ordered(lines: Iterable[LogLine]) -> list[LogLine]:
    """Each datum's lines in the order printed (attempt, segment, line); datums interleaved by
    time, as several workers printed them. Timestamps only merge datums: within one, a clock
    that stepped back cannot reorder anything."""
    by_datum: dict[tuple[str, str], list[LogLine]] = {}
    for line in lines:
        by_datum.setdefault((line.job, line.datum), []).append(line)
    runs = [sorted(group, key=lambda x: (x.attempt, x.seq, x.index)) for group in by_datum.values()]
    return list(heapq.merge(*runs, key=lambda x: x.timestamp))


def last(lines: Sequence[T], count: int | None) -> list[T]:
    """--tail N: the last N lines (all when N is None; none for 0)."""
    if count is None:
        return list(lines)
    return list(lines[max(0, len(lines) - count) :]) if count > 0 else []


def input_matches(inputs: Iterable[tuple[str, str]], wanted: Sequence[str]) -> bool:
    """--inputs: a datum whose input files (input name, path) include one of `wanted`: a path
    (the leading '/' optional), a folder above one, or `name:path`."""
    for name, path in inputs:
        mine = "/" + path.lstrip("/")
        for item in wanted:
            want_name, colon, want_path = item.rpartition(":")
            if colon and want_name != name:
                continue
            want = "/" + (want_path if colon else item).strip().lstrip("/")
            if mine == want or mine.startswith(want.rstrip("/") + "/"):
                return True
    return False


def parse_inputs(value: str | None) -> list[str]:
    """`PATH[,PATH]` as given to --inputs; empty items are dropped."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def cut_marker(cut_bytes: int, cut_lines: int) -> str:
    return f"… {cut_bytes} bytes cut ({cut_lines} lines) …"


def dropped_marker(count: int) -> str:
    return f"{count} lines dropped: user code printed faster than they could be stored"


class HeadTail(Generic[T]):
    """Keeps the first `head` and the last `tail` bytes of a datum's lines, whole lines only.

    Lines within the head are shipped as they come (`add` returns them); past it, the last
    `tail` bytes are held, and `finish` gives what was cut and the held tail. Bounded memory:
    at most `tail` bytes (plus one line) are held."""

    def __init__(self, head: int, tail: int) -> None:
        self.head, self.tail = head, tail
        self.shipped = 0
        self._held: deque[tuple[T, int]] = deque()
        self._held_bytes = 0
        self.cut_bytes = 0
        self.cut_lines = 0

    def add(self, item: T, size: int) -> list[T]:
        if not self._held and self.shipped + size <= self.head:
            self.shipped += size
            return [item]
        self._held.append((item, size))
        self._held_bytes += size
        while self._held and self._held_bytes > self.tail:
            _, gone = self._held.popleft()
            self._held_bytes -= gone
            self.cut_bytes += gone
            self.cut_lines += 1
        return []

    def finish(self) -> tuple[int, int, list[T]]:
        """(bytes cut, lines cut, the tail's lines); the cut sits between the head and the tail."""
        held = [item for item, _ in self._held]
        self._held.clear()
        self._held_bytes = 0
        return self.cut_bytes, self.cut_lines, held


class LineSplitter:
    """Bytes of one stream to lines: a line ends at '\\n'; a line longer than `limit` bytes is
    cut into pieces of `limit` (one huge line cannot hold the memory)."""

    def __init__(self, limit: int = 64 * 1024) -> None:
        self.limit = limit
        self._partial = bytearray()

    def feed(self, chunk: bytes) -> Iterator[str]:
        self._partial += chunk
        while True:
            end = self._partial.find(b"\n")
            if end < 0:
                break
            yield from self._pieces(bytes(self._partial[:end]))
            del self._partial[: end + 1]
        while len(self._partial) >= self.limit:
            yield self._partial[: self.limit].decode(errors="replace")
            del self._partial[: self.limit]

    def flush(self) -> Iterator[str]:
        if self._partial:
            yield from self._pieces(bytes(self._partial))
            self._partial.clear()

    def _pieces(self, line: bytes) -> Iterator[str]:
        if line.endswith(b"\r"):
            line = line[:-1]
        for start in range(0, max(len(line), 1), self.limit):
            yield line[start : start + self.limit].decode(errors="replace")
