"""Worker configuration, read from HERD_* environment variables in this one place."""

from __future__ import annotations

import os
import socket
import tempfile

from typing import Annotated

from pydantic import BeforeValidator, Field
from pydantic_settings import SettingsConfigDict

from scheduler.settings import BrokerSettings
from storage.setting_types import (
    Flag,
    Folder,
    OptionalPositiveInt,
    Seconds,
    Word,
    WorkerCount,
    one_of,
)

# The names worker/runtimes.py knows; checked here so a typo fails before any work, not mid-job.
RuntimeName = Annotated[str, BeforeValidator(one_of("auto", "docker", "local"))]


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(BrokerSettings):
    """Every field is checked when loaded (storage.setting_types): the CLI loads it before any work.

    HERD_BROKER and HERD_QUEUE come from BrokerSettings (declared once, shared with the scheduler)."""

    model_config = SettingsConfigDict(env_prefix="HERD_", extra="ignore")

    runtime: RuntimeName = Field(
        "auto",
        description=(
            "How user code runs: `docker` (the spec's image, in a warm container), `local` (a sandboxed process per "
            "datum) or `auto` (docker when a Docker engine answers, else local)."
        ),
    )
    concurrency: WorkerCount = Field(1, description="Datum batches one `herd worker` runs at once (its processes).")
    visibility_timeout: Seconds = Field(
        10.0,
        description=(
            "Seconds after which the broker hands a batch taken by a worker that died (never acknowledged) to another "
            "worker. Longer batches are redelivered too; their datums' live leases make the copy step aside."
        ),
    )
    scratch: Folder = Field(
        default_factory=lambda: os.path.join(tempfile.gettempdir(), "herd-scratch"),
        description="Folder where a worker lays out each datum's /pfs before running user code.",
    )
    worker_id: Word = Field(
        default_factory=_default_worker_id,
        description="Name of this worker in logs and leases (default: `<host>-<pid>` of each worker process).",
    )
    lease_seconds: Seconds = Field(
        10.0, description="How long a datum attempt stays claimed without a heartbeat before it is retried elsewhere."
    )
    user_network: Flag = Field(
        True,
        description=(
            "Give user code a network (containers: the engine's default bridge; the local sandbox: "
            "the host's); false: no network at all."
        ),
    )
    output_quota: OptionalPositiveInt = Field(
        None, description="Largest total size in bytes of one datum's /pfs/out (unset: no limit)."
    )
    local_isolation: Annotated[str, BeforeValidator(one_of("auto", "bwrap", "unshare", "rewrite"))] = Field(
        "auto",
        description=(
            "Sandbox of the local runtime: `bwrap`, `unshare` (root), `rewrite` (no sandbox) or `auto` (the first "
            "of these that works here)."
        ),
    )
    outage_seconds: Seconds = Field(
        300.0,
        description=(
            "How long a datum may keep meeting a storage or Docker engine outage, given back to the queue each "
            "time, before it fails naming the outage."
        ),
    )

    def for_this_process(self) -> WorkerSettings:
        """These settings in one worker process: loaded once in `herd worker`, whose pool processes
        are forked from it, so an unset HERD_WORKER_ID names each process rather than their parent."""
        if "worker_id" in self.model_fields_set:
            return self
        return self.model_copy(update={"worker_id": _default_worker_id()})
