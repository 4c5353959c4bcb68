"""Scheduler configuration, read from HERD_* environment variables in this one place."""

from __future__ import annotations

import os
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.setting_types import MAX_WORKERS, OptionalRedisUrl, Seconds, Word, WorkerCount, one_of


def _default_parallelism() -> int:
    # One datum more than cores: a datum's slot spends part of its time in herd's own work
    # (staging its inputs, its records, storing its outputs), when its user code uses no core,
    # and the extra one runs user code then. Trivial datums (bench/pipeline.py, row 8): 329 ->
    # 371 datums/s on 2 cores; CPU-bound user code gets the same cores, shared among one more.
    return min((os.cpu_count() or 1) + 1, MAX_WORKERS)


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
    heartbeat_seconds: Seconds = Field(
        2.0,
        description=(
            "Seconds between two heartbeats of each `herd scheduler` and `herd worker` in the broker's Redis; "
            "`herd status` names one gone after three missed beats."
        ),
    )


def _optional_port(value: Any) -> int | None:
    if value is None or value == "":
        return None  # empty = unset: no metrics endpoint
    expected = "expected a TCP port number (1 to 65535; empty or unset: no metrics)"
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]{1,5}", text) or not 1 <= int(text) <= 65535:
        raise ValueError(expected)
    return int(text)


OptionalPort = Annotated[int | None, BeforeValidator(_optional_port)]
LogFormat = Annotated[str, BeforeValidator(one_of("human", "json"))]


class ServiceSettings(BrokerSettings):
    """What `herd scheduler` and `herd worker` share besides the broker: where each exposes its
    Prometheus metrics, and how it logs. Declared once; each service reads them from its own
    environment (a scheduler and a worker on one host set different ports)."""

    model_config = SettingsConfigDict(env_prefix="HERD_", extra="ignore")

    metrics_port: OptionalPort = Field(
        None,
        description=(
            "TCP port on which `herd scheduler` or `herd worker` serves Prometheus metrics at `/metrics` "
            "(all interfaces). Unset or empty: no metrics endpoint."
        ),
    )
    log_format: LogFormat = Field(
        "human",
        description=(
            "How `herd scheduler` and `herd worker` log on stderr: `human` (one readable line per record) or "
            "`json` (one JSON object per line: time, level, component, pipeline, job, datum, message)."
        ),
    )


class SchedulerSettings(ServiceSettings):
    """Every field is checked when loaded (storage.setting_types): the CLI loads it before any work."""

    model_config = SettingsConfigDict(env_prefix="HERD_", extra="ignore")

    parallelism: WorkerCount = Field(
        default_factory=_default_parallelism,
        description="Datums run at once by the embedded (in-process) scheduler when a spec sets no parallelism_spec.",
    )
    reconcile_interval: Seconds = Field(
        1.0,
        description=(
            "Seconds between two passes of the scheduler's reconcile loop when nothing reports back (a change "
            "made through the CLI or the server wakes it at once)."
        ),
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
