"""A Runtime that runs a Python function per datum, for tests of the flow around user code.

It lives with the tests, not in worker/: nothing in production runs user code this way.
"""

from __future__ import annotations

from collections.abc import Callable

from worker.runtime import RunRequest, RunResult, UserCode


class FakeSession:
    def __init__(self, fn: Callable[[RunRequest], RunResult]) -> None:
        self._fn = fn
        self.closed = False

    def run(self, request: RunRequest) -> RunResult:
        return self._fn(request)

    def close(self) -> None:
        self.closed = True


class FakeRuntime:
    """Runs a Python function per datum, for tests of the flow around user code."""

    name = "fake"

    def __init__(self, fn: Callable[[RunRequest], RunResult]) -> None:
        self._fn = fn
        self.sessions: list[FakeSession] = []

    def open(self, pipeline: str, transform: UserCode) -> FakeSession:
        session = FakeSession(self._fn)
        self.sessions.append(session)
        return session
