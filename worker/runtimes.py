"""Runtime by name: the one place that maps HERD_RUNTIME to an implementation module."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from storage.errors import HerdError, InvalidArgument
from worker.runtime import Runtime

log = logging.getLogger(__name__)

RUNTIMES = {
    "local": "worker.process_runtime:ProcessRuntime",
    "docker": "worker.docker_runtime:DockerRuntime",
}
AUTO = "auto"  # docker wherever an engine answers, else local


def open_runtime(name: str, *, protect: Iterable[Path] = (), isolation: str = AUTO) -> Runtime:
    """An instance of the runtime called `name` (imported only when chosen).

    `protect` and `isolation` are for the local runtime: the folders user code must not see
    (storage, scratch) and its sandbox (HERD_LOCAL_ISOLATION); Docker shows only /pfs anyway.
    """
    if name == AUTO:
        return _auto(protect, isolation)
    try:
        module, _, attr = RUNTIMES[name].partition(":")
    except KeyError:
        raise InvalidArgument(
            f"unknown runtime '{name}' in HERD_RUNTIME; choose one of: {', '.join([AUTO, *sorted(RUNTIMES)])}"
        ) from None
    factory = getattr(importlib.import_module(module), attr)
    return factory(isolation=isolation, protect=tuple(protect)) if name == "local" else factory()


def _auto(protect: Iterable[Path], isolation: str) -> Runtime:
    """The Docker runtime if its engine answers a ping now; the local one otherwise."""
    try:
        docker_runtime: Any = open_runtime("docker")
        with docker_runtime.engine_errors("ping"):
            docker_runtime.client.ping()
    except (HerdError, ImportError) as exc:
        log.info("HERD_RUNTIME=auto: no Docker engine answers (%s); user code runs as local processes", exc)
        return open_runtime("local", protect=protect, isolation=isolation)
    log.info("HERD_RUNTIME=auto: %s answers; user code runs in the specs' images", docker_runtime.where)
    return docker_runtime
