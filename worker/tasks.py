"""Celery tasks of herd workers, each ≤15 lines: validate the message, run it, return a dict.

They are registered on the app `make_app` builds (worker/app.py), with the pool process's
context opener: nothing here runs at import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Celery, Task

from scheduler.messages import PROCESS_BATCH, BatchOutcome, DatumBatch
from storage.errors import Unavailable
from worker import metrics
from worker.context import WorkerContext
from worker.datum import process_batch

log = logging.getLogger(__name__)

MAX_BACKOFF = 30  # seconds between two deliveries of a batch given back during an outage


def backoff(retries: int) -> int:
    """Seconds before a batch given back for the `retries`+1-th time comes again: 1, 2, 4 ... 30."""
    delay: int = 2 ** min(retries, 16)  # typeshed: int ** int may be a float (negative powers)
    return min(MAX_BACKOFF, delay)


def register_tasks(app: Celery, context: Callable[[], WorkerContext]) -> None:
    """Register herd's tasks on `app`; `context` gives the calling pool process's worker context."""

    @app.task(name=PROCESS_BATCH, bind=True, max_retries=None)
    def process_batch_task(task: Task[[dict[str, Any]], dict[str, Any]], message: dict[str, Any]) -> dict[str, Any]:
        """Run a batch of datums; the outcome is a hint for the scheduler (storage holds the truth).

        An outage (storage, broker, Docker engine) gives the batch back to the queue, with a
        growing delay and no cap: it never burns a datum try (HERD_OUTAGE_SECONDS bounds it)."""
        batch = DatumBatch.model_validate(message)
        try:
            with metrics.busy():  # this pool process is a busy slot while the batch runs
                ctx = context()
                raw = process_batch(batch.model_dump(), objects=ctx.objects, settings=ctx.settings)
        except Unavailable as exc:
            retries = task.request.retries or 0
            log.warning("job %s: batch given back (outage, delivery %d): %s", batch.job_id, retries + 1, exc.message,
                        extra={"job": batch.job_id})
            raise task.retry(exc=exc, countdown=backoff(retries)) from None
        return BatchOutcome.model_validate(raw).model_dump(mode="json")
