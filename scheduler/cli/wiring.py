"""The composition root: the one module that puts storage, scheduler and worker together.

Everything else keeps the import rule (storage <- scheduler <- worker; docs/design.md): the
scheduler is handed the worker's functions here, never finds them by name. Imports of worker
code stay inside the functions, so `herd --help` does not load the runtimes or Celery.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pydantic_settings import BaseSettings

from scheduler.dispatch_inprocess import InProcessDispatcher
from storage.objects import ObjectStore


def settings_classes() -> dict[str, type[BaseSettings]]:
    """Every settings class a command may read, by its variables' owner. All are loaded before a
    command runs, so a bad variable is refused before anything is written (HERD_PARALLELISM=abc)."""
    from scheduler.settings import SchedulerSettings
    from storage.settings import FailpointSettings, StorageSettings
    from worker.settings import WorkerSettings

    return {
        "storage": StorageSettings, "failpoints": FailpointSettings, "scheduler": SchedulerSettings,
        "worker": WorkerSettings,
    }


def embedded_dispatcher(objects: ObjectStore, threads: int, worker_settings: Any = None) -> InProcessDispatcher:
    """The embedded default's dispatcher: `worker.datum.process_batch` on threads of this process.

    `worker_settings`: the entry point's worker.settings.WorkerSettings (None: read by the worker)."""
    from worker.context import release_context
    from worker.datum import process_batch

    return InProcessDispatcher(
        objects, threads, run_batch=partial(process_batch, settings=worker_settings), release=release_context,
    )


def worker_app(worker_settings: Any, storage_settings: Any) -> Any:
    """The Celery app `herd worker` runs (worker/app.py), built from the settings loaded once."""
    from worker.app import make_app

    return make_app(worker_settings, storage_settings)
