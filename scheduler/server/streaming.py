"""NDJSON answers for the long waits (inspect-job --block, flush-commit, get-logs -f).

The work runs on a thread of its own and hands each result over as one JSON line, so the client
prints as results come; while it waits, a blank line goes out every HEARTBEAT_SECONDS. Those
blank lines are how a client that hung up is noticed: the write fails, the answer ends and the
work is told (`Events.gone`), so a follower of a pipeline's logs does not poll for ever for
nobody. A HerdError raised once the answer has started is its last line, `{"error": {...}}`
(scheduler/server/errors.py's body), which the client raises as the same error.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from scheduler.server.errors import error_body
from storage.errors import HerdError

HEARTBEAT_SECONDS = 1.0
BACKLOG = 256  # lines waiting for a slow reader before the work waits for it
NDJSON = "application/x-ndjson"

log = logging.getLogger("herd.server")
_END = object()


class ClientGone(Exception):
    """The client hung up: raised into the work at its next emit or check, which ends it."""


class Events:
    """The hand-over between the work's thread and the answer being written."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=BACKLOG)
        self._gone = threading.Event()

    def gone(self) -> bool:
        return self._gone.is_set()

    def check(self) -> None:
        """ClientGone once the client has hung up (a wait's `on_wait` calls it each poll)."""
        if self._gone.is_set():
            raise ClientGone

    def emit(self, item: Any) -> None:
        """One line of the answer (JSON-able); waits while the reader is BACKLOG lines behind."""
        while True:
            self.check()
            try:
                self._queue.put(item, timeout=HEARTBEAT_SECONDS)
                return
            except queue.Full:
                continue

    def leave(self) -> None:
        self._gone.set()

    def _end(self) -> None:
        try:
            self._queue.put(_END, timeout=HEARTBEAT_SECONDS)
        except queue.Full:
            self._gone.set()  # nobody reads any more

    def _next(self, timeout: float) -> Any:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None


class NdjsonResponse(StreamingResponse):
    """A StreamingResponse that tells its work when the answer is over, however it ended."""

    def __init__(self, body: AsyncIterator[bytes], events: Events) -> None:
        super().__init__(body, media_type=NDJSON)
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.events.leave()


def ndjson(work: Callable[[Events], None]) -> NdjsonResponse:
    """An answer of the lines `work(events)` emits, `work` running on a thread of its own."""
    events = Events()

    def run() -> None:
        try:
            work(events)
        except ClientGone:
            return
        except HerdError as exc:
            _last_words(events, error_body(exc))
        except Exception as exc:  # an answer already started cannot turn into a 500: say it in-band
            log.exception("streamed answer failed")
            _last_words(events, error_body(HerdError(f"the herd server failed: {type(exc).__name__}: {exc}")))
        events._end()

    async def body() -> AsyncIterator[bytes]:
        threading.Thread(target=run, name="herd-stream", daemon=True).start()
        while True:
            item = await anyio.to_thread.run_sync(events._next, HEARTBEAT_SECONDS)
            if item is _END:
                return
            yield b"\n" if item is None else json.dumps(item, ensure_ascii=False).encode() + b"\n"

    return NdjsonResponse(body(), events)


def _last_words(events: Events, item: Any) -> None:
    try:
        events.emit(item)
    except ClientGone:
        pass
