"""Celery tasks of herd workers, each ≤15 lines: validate the message, run it, return a dict."""

from __future__ import annotations

from scheduler.messages import PROCESS_BATCH, BatchOutcome, DatumBatch
from worker.app import app
from worker.datum import process_batch


@app.task(name=PROCESS_BATCH)
def process_batch_task(message: dict) -> dict:
    """Run a batch of datums; the outcome is a hint for the scheduler (storage holds the truth)."""
    batch = DatumBatch.model_validate(message)
    outcome = BatchOutcome.model_validate(process_batch(batch.model_dump()))
    return outcome.model_dump(mode="json")
