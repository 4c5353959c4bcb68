"""The wire between scheduler and workers: task names and the batch message. Pure.

A message carries only the job id and which datums of its stored plan to run: the plan itself
lives in storage (written before anything is enqueued), so a message stays small however large
the datums are, and a lost or duplicated message can be replayed harmlessly.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

PROCESS_BATCH = "herd.process_batch"

# Where each task is implemented, resolved by name (importlib) by the in-process dispatcher,
# as Celery resolves it by name in the worker: the scheduler never imports worker code.
RELEASE_CONTEXT = "herd.release_context"  # in-process only: end the warm sessions of a store
TASKS = {PROCESS_BATCH: "worker.datum:process_batch", RELEASE_CONTEXT: "worker.context:release_context"}

MESSAGE_VERSION = 1


class DatumBatch(BaseModel):
    """Run these datums (indices into the job's stored plan)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = MESSAGE_VERSION
    job_id: str
    datums: tuple[int, ...] = Field(min_length=1)


class BatchOutcome(BaseModel):
    """What a worker reports back: a hint only; the records in storage are the truth."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    job_id: str
    done: tuple[int, ...] = ()
    failed: tuple[int, ...] = ()
    deferred: tuple[int, ...] = ()  # another worker holds a live lease on these
    used_up: tuple[int, ...] = ()  # no try left: the scheduler fails them (it decides, not the worker)
    seconds: tuple[float, ...] = ()  # run time of each datum run here (batch sizes follow them)
