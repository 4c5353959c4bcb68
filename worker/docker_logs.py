"""Live logs of the Docker runtime: a running datum's output, read every few tenths of a second.

One thread per session serves every datum of it: a thread started and joined per datum cost
~0.4 ms of a datum of ~6 ms (py-spy over a distributed job, 2026-12-02), though most datums end
before their first read. The thread reads through a function the session gives (an exec in the
container) and hands what it got to the datum's sink, under a lock the datum's end takes too:
once `watching` returns, nothing more reaches that sink, and a read that was under way when the
datum ended is dropped (the files may be the next datum's already; the answer's tails follow).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from worker.runtime import LogSink

# (stdout from, stderr from), 1-based byte offsets as `tail -c +N` takes them -> (stdout, stderr)
# bytes read; None for a read that failed (tried again at the next interval).
ReadOutput = Callable[[int, int], "tuple[bytes | None, bytes | None] | None"]


class LivePoller:
    """Reads the running datum's output every `interval` seconds, on one thread."""

    def __init__(self, read: ReadOutput, interval: float, name: str = "herd-docker-logs") -> None:
        self._read = read
        self._interval = interval
        self._name = name
        self._cond = threading.Condition()
        self._sink: LogSink | None = None
        self._datum = 0  # bumped when a datum starts or ends: a read of another datum is dropped
        self._token: object | None = None  # the running thread's; replaced when it must stop

    @contextlib.contextmanager
    def watching(self, sink: LogSink) -> Iterator[None]:
        """While the block runs (a datum), its output goes to `sink` as it is read."""
        with self._cond:
            self._datum += 1
            self._sink = sink
            if self._token is None:
                self._token = token = object()
                threading.Thread(target=self._serve, args=(token,), name=self._name, daemon=True).start()
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:  # waits for a write under way: none follows
                self._datum += 1
                self._sink = None
                self._cond.notify_all()

    def close(self) -> None:
        """Stop the thread (the session's container is gone); `watching` starts another."""
        with self._cond:
            self._token = None
            self._cond.notify_all()

    def _serve(self, token: object) -> None:
        with self._cond:
            while self._token is token:
                if self._sink is None:
                    self._cond.wait()
                    continue
                self._follow(token, self._datum, self._sink)

    def _follow(self, token: object, datum: int, sink: LogSink) -> None:
        """Read one datum's output every interval until it ends (called and returning locked)."""
        offsets = {"stdout": 0, "stderr": 0}

        def moved_on() -> bool:
            return self._datum != datum or self._token is not token

        while not self._cond.wait_for(moved_on, self._interval):
            self._cond.release()
            try:
                got = self._read(offsets["stdout"] + 1, offsets["stderr"] + 1)
            finally:
                self._cond.acquire()
            if moved_on():
                return
            for stream, chunk in zip(("stdout", "stderr"), got or (None, None)):
                if chunk:
                    offsets[stream] += len(chunk)
                    sink.write(stream, chunk)
