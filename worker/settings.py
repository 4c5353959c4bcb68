"""Worker configuration, read from HERD_* environment variables in this one place."""

from __future__ import annotations

import os
import socket
import tempfile

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERD_", extra="ignore")

    runtime: str = Field(
        "auto",
        description=(
            "How user code runs: `docker` (the spec's image, in a warm container), `local` (a sandboxed process per "
            "datum) or `auto` (docker when a Docker engine answers, else local)."
        ),
    )
    broker: str | None = Field(None, description="Redis URL of the Celery broker that `herd worker` takes batches from.")
    queue: str = Field("herd", description="Name of the broker queue datum batches go through (scheduler and workers).")
    concurrency: int = Field(1, ge=1, description="Datum batches one `herd worker` runs at once (its processes).")
    visibility_timeout: float = Field(
        10.0,
        description=(
            "Seconds after which the broker hands a batch taken by a worker that died (never acknowledged) to another "
            "worker. Longer batches are redelivered too; their datums' live leases make the copy step aside."
        ),
    )
    scratch: str = Field(
        default_factory=lambda: os.path.join(tempfile.gettempdir(), "herd-scratch"),
        description="Folder where a worker lays out each datum's /pfs before running user code.",
    )
    worker_id: str = Field(default_factory=_default_worker_id, description="Name of this worker in logs and leases.")
    lease_seconds: float = Field(
        10.0, description="How long a datum attempt stays claimed without a heartbeat before it is retried elsewhere."
    )
    user_network: bool = Field(
        True, description="Give user containers a network (the engine's default bridge); false: no network at all."
    )
    output_quota: int | None = Field(
        None, description="Largest total size in bytes of one datum's /pfs/out (unset: no limit)."
    )
