"""Scheduler configuration, read from HERD_* environment variables in this one place."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.setting_types import MAX_WORKERS, OptionalRedisUrl, Seconds, Word, WorkerCount


def _default_parallelism() -> int:
    return min(os.cpu_count() or 1, MAX_WORKERS)


class BrokerSettings(BaseSettings):
    """The broker both `herd scheduler` and `herd worker` meet at; declared once, here, and
    inherited by SchedulerSettings and WorkerSettings (worker may import scheduler, not the reverse)."""

    model_config = SettingsConfigDict(env_prefix="HERD_", extra="ignore")

    broker: OptionalRedisUrl = Field(
        None,
        description=(
            "Redis URL of the Celery broker (`redis://host:6379/0`). Set: `herd scheduler` and `herd worker` run "
            "the jobs and the CLI only writes to storage; `herd worker` takes its batches from it. Unset: the CLI "
            "runs jobs itself, in-process."
        ),
    )
    queue: Word = Field("herd", description="Name of the broker queue datum batches go through (scheduler and workers).")


class SchedulerSettings(BrokerSettings):
    """Every field is checked when loaded (storage.setting_types): the CLI loads it before any work."""

    model_config = SettingsConfigDict(env_prefix="HERD_", extra="ignore")

    parallelism: WorkerCount = Field(
        default_factory=_default_parallelism,
        description="Datums run at once by the embedded (in-process) scheduler when a spec sets no parallelism_spec.",
    )
    reconcile_interval: Seconds = Field(
        1.0, description="Seconds between two passes of the scheduler's reconcile loop when nothing reports back."
    )
    batch_seconds: Seconds = Field(
        1.0, description="Target run time of one datum batch message; small datums share a message."
    )
    resend_seconds: Seconds = Field(
        20.0,
        description=(
            "A batch sent this long ago whose datums have no result and no live lease, while the queue is empty, "
            "is taken for lost and sent again (the backstop behind the broker's own redelivery)."
        ),
    )
    lock_seconds: Seconds = Field(
        10.0,
        description="Time to live of the single-active scheduler lock in Redis; a standby scheduler takes over this long after the active one dies.",
    )
