"""How datum batches reach workers: a small protocol with one implementation per file.

`dispatch_inprocess.InProcessDispatcher` runs batches on a thread pool in this process (the
embedded default); `dispatch_celery.CeleryDispatcher` sends them to Celery workers by name.
Either way the worker code is found by task name, never imported by the scheduler.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

from scheduler.messages import BatchOutcome, DatumBatch, TASKS


class Dispatcher(Protocol):
    def submit(self, batch: DatumBatch) -> None:
        """Send a batch; returns at once."""
        ...

    def in_flight(self, job_id: str) -> set[int]:
        """Datum indices of `job_id` sent and not yet reported back (a hint, not the truth)."""
        ...

    def wait(self, timeout: float) -> list[BatchOutcome]:
        """Block until some batch reports back or `timeout` passes; the outcomes since last call."""
        ...

    def close(self) -> None:
        ...


def resolve_task(name: str) -> Callable[..., Any]:
    """The function implementing task `name` (module:function in messages.TASKS)."""
    module, _, attr = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), attr)
