"""Runtime from settings: the one place that maps HERD_RUNTIME to an implementation module and
hands each implementation the settings that concern it (HERD_OUTPUT_QUOTA, HERD_LOCAL_ISOLATION)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from storage.errors import HerdError, InvalidArgument
from worker.runtime import Runtime
from worker.settings import WorkerSettings, docker_engine_socket

if TYPE_CHECKING:
    from worker.docker_runtime import DockerRuntime

log = logging.getLogger(__name__)

RUNTIMES = {
    "local": "worker.process_runtime:ProcessRuntime",
    "docker": "worker.docker_runtime:DockerRuntime",
}
AUTO = "auto"  # docker wherever an engine answers, else local


def open_runtime(settings: WorkerSettings, *, protect: Iterable[Path] = (), name: str | None = None) -> Runtime:
    """The runtime `settings.runtime` names (or `name`, which overrides it), built from `settings`.

    Each implementation is imported only when chosen. `protect` is for the local runtime: the
    folders user code must not see (storage, scratch); Docker shows only /pfs anyway. The output
    quota goes to Docker, which unpacks /pfs/out from the container (the local runtime writes it
    on the host, where collecting it checks the quota: worker/outputs.py).
    """
    chosen = name or settings.runtime
    if chosen == AUTO:
        return _auto(settings, tuple(protect))
    try:
        module, _, attr = RUNTIMES[chosen].partition(":")
    except KeyError:
        raise InvalidArgument(
            f"unknown runtime '{chosen}' in HERD_RUNTIME; choose one of: {', '.join([AUTO, *sorted(RUNTIMES)])}"
        ) from None
    factory: Callable[..., Runtime] = getattr(importlib.import_module(module), attr)
    return factory(**runtime_options(chosen, settings, tuple(protect)))


def runtime_options(name: str, settings: WorkerSettings, protect: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The constructor arguments of runtime `name` taken from `settings` (pure)."""
    if name == "local":
        return {"isolation": settings.local_isolation, "protect": protect}
    return {"output_quota": settings.output_quota, "log_poll_seconds": settings.log_flush_seconds}


def _auto(settings: WorkerSettings, protect: tuple[Path, ...]) -> Runtime:
    """The Docker runtime if its engine answers a ping now; the local one otherwise."""
    socket = docker_engine_socket()
    if socket is not None and not socket.exists():
        log.info("HERD_RUNTIME=auto: no Docker engine at %s; user code runs as local processes", socket)
        return open_runtime(settings, protect=protect, name="local")
    try:
        docker_runtime = cast("DockerRuntime", open_runtime(settings, name="docker"))  # RUNTIMES["docker"]
        with docker_runtime.engine_errors("ping"):
            docker_runtime.client.ping()
    except (HerdError, ImportError) as exc:
        log.info("HERD_RUNTIME=auto: no Docker engine answers (%s); user code runs as local processes", exc)
        return open_runtime(settings, protect=protect, name="local")
    log.info("HERD_RUNTIME=auto: %s answers; user code runs in the specs' images", docker_runtime.where)
    return docker_runtime
