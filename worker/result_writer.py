"""A batch's results stored on a thread of their own, where a write waits on the network, so that
storing one datum's result overlaps claiming and running the next.

On S3 a result is a create-only PUT (5-7 ms on SeaweedFS here) that the batch's thread would sit
out; handed over, trivial datums ran 149-174 -> 165-187/s (row 9's pipeline, 1,000 datums,
SeaweedFS, 4 interleaved pairs, 2026-12-04). To a local folder a write is a few system calls,
and the hand-over cost more than it saved (row 8: 457-498 -> 422-444/s; row 12: 188-204 ->
181-192/s), so there the writes run in the caller's thread, with the same outcome. Either way
the batch's outcome waits for every write, a write's outage still gives its attempt back
(worker/datum.py's `_store_or_give_back` runs whole), and no result is reported that is not
stored.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class ResultWriter(Generic[T]):
    """Runs each batch index's store in the order given, on one thread of its own (`threaded`)
    or at once in the caller's; `wait` gives their values and raises the first error, and
    leaving the block waits for every write."""

    def __init__(self, threaded: bool = True) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="herd-results") if threaded else None
        self._pending: list[tuple[int, Future[T]]] = []
        self.failed = False  # a write raised: the batch should start no more datums

    def submit(self, index: int, store: Callable[[], T]) -> None:
        if self._pool is not None:
            self._pending.append((index, self._pool.submit(self._run, store)))
            return
        done: Future[T] = Future()
        try:
            done.set_result(self._run(store))
        except Exception as exc:  # noqa: BLE001 - kept for wait(), as the thread's future keeps it
            done.set_exception(exc)
        self._pending.append((index, done))

    def _run(self, store: Callable[[], T]) -> T:
        try:
            return store()
        except BaseException:
            self.failed = True
            raise

    def wait(self) -> dict[int, T]:
        """Every write's value by batch index, once all have ended; the first error raised."""
        done: dict[int, T] = {}
        first: BaseException | None = None
        for index, future in self._pending:
            try:
                done[index] = future.result()
            except BaseException as exc:  # noqa: BLE001 - every write ends before one is raised
                first = first or exc
        self._pending.clear()
        if first is not None:
            raise first
        return done

    def __enter__(self) -> ResultWriter[T]:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        # A batch that raises still waits for the writes it handed over: each either stored its
        # result or gave its attempt back before the batch goes back to the broker. Their own
        # errors give way to the batch's.
        try:
            if exc is not None:
                try:
                    self.wait()
                except BaseException:  # noqa: BLE001 - the batch's own error is the one raised
                    pass
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
