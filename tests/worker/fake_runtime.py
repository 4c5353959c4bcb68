"""A Runtime that runs a Python function per datum, for tests of the flow around user code.

It lives with the tests, not in worker/: nothing in production runs user code this way. It
honours the parts of the Runtime contract a function can (tests/worker/test_runtime_contract.py
runs the same cases over it and the real runtimes): the function gets the datum's environment
(the transform's, the request's winning) and its stdin as the real runtimes build them, works
in `request.pfs_dir` (outputs are what it leaves in `out/`), and the session bounds the
stdout/stderr tails and measures the duration. Timeouts, kills and isolation it has not: the
function runs on the caller's thread.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from worker.runtime import LOG_TAIL_BYTES, RunRequest, RunResult, UserCode


@dataclass(frozen=True)
class FakeCall:
    """One datum as the function sees it."""

    transform: UserCode
    request: RunRequest

    @property
    def env(self) -> dict[str, str]:
        return {**self.transform.env, **self.request.env}

    @property
    def stdin(self) -> bytes:
        return "".join(f"{line}\n" for line in self.transform.stdin).encode()


class FakeSession:
    def __init__(self, fn: Callable[[FakeCall], RunResult], transform: UserCode) -> None:
        self._fn, self.transform = fn, transform
        self.runs = 0
        self.closed = False

    def run(self, request: RunRequest) -> RunResult:
        started = time.monotonic()
        result = self._fn(FakeCall(self.transform, request))
        self.runs += 1
        return dataclasses.replace(
            result, stdout=result.stdout[-LOG_TAIL_BYTES:], stderr=result.stderr[-LOG_TAIL_BYTES:],
            duration=result.duration or max(time.monotonic() - started, 1e-9),
        )

    def close(self) -> None:
        self.closed = True


class FakeRuntime:
    """Runs `fn(FakeCall)` per datum, for tests of the flow around user code."""

    name = "fake"

    def __init__(self, fn: Callable[[FakeCall], RunResult]) -> None:
        self._fn = fn
        self.sessions: list[FakeSession] = []

    def open(self, pipeline: str, transform: UserCode) -> FakeSession:
        session = FakeSession(self._fn, transform)
        self.sessions.append(session)
        return session
