"""How datum batches reach workers: a small protocol with one implementation per file.

`dispatch_inprocess.InProcessDispatcher` runs batches on a thread pool in this process (the
embedded default); `dispatch_celery.CeleryDispatcher` sends them to Celery workers by name.
Either way the worker code is found by task name, never imported by the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from scheduler.messages import BatchOutcome, DatumBatch
from scheduler.reconcile import Mark


class Dispatcher(Protocol):
    def submit(self, batch: DatumBatch) -> None:
        """Send a batch and mark it sent; returns at once."""
        ...

    def sent(self, job_id: str) -> list[Mark]:
        """The job's batches sent and not yet reported back, and its watches (a hint, not the truth)."""
        ...

    def forget(self, job_id: str, keys: tuple[str, ...]) -> None:
        """Drop marks that were checked against storage."""
        ...

    def watch(self, job_id: str, datums: tuple[int, ...]) -> None:
        """Mark datums another worker's lease holds, to be checked again later."""
        ...

    def queue_size(self) -> int:
        """Batches waiting in the queue, not yet taken by a worker."""
        ...

    def now(self) -> float:
        """The clock marks and leases are judged by (Unix seconds)."""
        ...

    def wait(self, timeout: float) -> list[BatchOutcome]:
        """Block until some batch reports back or `timeout` passes; the outcomes since last call."""
        ...

    def close(self) -> None:
        ...
