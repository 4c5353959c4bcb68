"""Worker configuration, read from HERD_* environment variables in this one place."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field
from pydantic_settings import SettingsConfigDict

from scheduler.settings import ServiceSettings
from storage.setting_types import (
    ByteCount,
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


def _optional_folder(value: object) -> str | None:
    """An absolute folder path, or None when unset or empty."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not os.path.isabs(value) or any(ord(c) < 32 for c in value):
        raise ValueError("expected an absolute folder path")
    return value


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(ServiceSettings):
    """Every field is checked when loaded (storage.setting_types): the CLI loads it before any work.

    HERD_BROKER, HERD_QUEUE, HERD_METRICS_PORT and HERD_LOG_FORMAT come from ServiceSettings (declared
    once, shared with the scheduler)."""

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
    secrets_dir: Annotated[str | None, BeforeValidator(_optional_folder)] = Field(
        None,
        description=(
            "Folder of the secrets this worker holds for `transform.secrets`: `<folder>/<secret name>/<key>`, one "
            "file per key (the layout of a mounted Kubernetes secret). Unset: a pipeline naming a secret fails."
        ),
    )

    log_flush_seconds: Seconds = Field(
        0.5,
        description=(
            "How often a worker stores what running user code printed (live logs: `herd get-logs -f` sees a line "
            "about this long after it is printed)."
        ),
    )
    log_head_bytes: ByteCount = Field(
        1024 * 1024,
        description="Live logs: the first bytes of a datum attempt's output that are stored as they are printed.",
    )
    log_tail_bytes: ByteCount = Field(
        1024 * 1024,
        description=(
            "Live logs: past the head, the last bytes of a datum attempt's output that are kept, stored when the "
            "attempt ends; what lies between is cut, and a `… N bytes cut …` line says so."
        ),
    )

    def for_this_process(self) -> WorkerSettings:
        """These settings in one worker process: loaded once in `herd worker`, whose pool processes
        are forked from it, so an unset HERD_WORKER_ID names each process rather than their parent."""
        if "worker_id" in self.model_fields_set:
            return self
        return self.model_copy(update={"worker_id": _default_worker_id()})


def use_metrics_folder(path: str) -> None:
    """Point prometheus_client's multiprocess mode at `path`, for this process and the pool
    processes it forks: the library reads PROMETHEUS_MULTIPROC_DIR from the environment (when
    it is first imported, and as each process writes its values), so it is set here, the one
    kind of module that touches the environment (worker/metrics.py calls it)."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path


def docker_engine_socket() -> Path | None:
    """The socket file the Docker SDK would connect to (DOCKER_HOST, else the default one), or
    None when DOCKER_HOST names no local socket (tcp://, ssh://): HERD_RUNTIME=auto looks for the
    file before it loads the SDK, which costs a CLI command more than a tenth of a second."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return Path(host.removeprefix("unix://")) if host.startswith("unix://") else None
