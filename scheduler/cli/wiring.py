"""The composition root: the one module that puts storage, scheduler and worker together.

Everything else keeps the import rule (storage <- scheduler <- worker; docs/design.md): the
scheduler is handed the worker's functions here, never finds them by name. Imports of worker
code stay inside the functions, so `herd --help` does not load the runtimes or Celery.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, cast

from storage.errors import HerdError, MissingPackage

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # imported where used: each costs start-up time every verb would pay
    from pydantic_settings import BaseSettings

    from scheduler.broker import Broker
    from scheduler.dispatch_inprocess import InProcessDispatcher
    from scheduler.pfs_api import HerdPfs
    from scheduler.pipelines import Pipelines
    from scheduler.queries import JobQueries
    from scheduler.remote.settings import RemoteSettings
    from scheduler.settings import SchedulerSettings
    from storage.repos import Pfs
    from storage.objects import ObjectStore
    from storage.settings import StorageSettings

# What `pip install 'herd[cluster]'` adds (pyproject.toml): the broker, the queue, the Docker runtime,
# the services' Prometheus metrics.
CLUSTER_PACKAGES = ("celery", "kombu", "redis", "docker", "prometheus_client")
CLUSTER_HINT = "pip install 'herd[cluster]'"


@contextmanager
def cluster_part(what: str) -> Iterator[None]:
    """Around the imports of a part that needs herd[cluster]: a missing package of it becomes one
    line naming the package and the extra (MissingPackage), not a traceback."""
    try:
        yield
    except ModuleNotFoundError as exc:
        package = (exc.name or "").partition(".")[0]
        if package not in CLUSTER_PACKAGES:
            raise
        raise MissingPackage(f"{what} needs the Python package '{package}', which is not installed: "
                             f"{CLUSTER_HINT}") from None


class Herd:
    """herd's Python API over one storage, wired as the CLI wires it (docs/python-api.md).

    `pfs` (repos, commits, files), `pipelines` (pipeline verbs), `jobs` (jobs, datums, logs,
    flush). Without HERD_BROKER, `settle()` runs the jobs owed now in this process (each CLI verb
    that changes data does it before it returns); `jobs`' waits call it too."""

    def __init__(self, settings: dict[str, BaseSettings]) -> None:
        self.settings = settings

    @property
    def storage_settings(self) -> StorageSettings:
        return cast("StorageSettings", self.settings["storage"])

    @property
    def scheduler_settings(self) -> SchedulerSettings:
        return cast("SchedulerSettings", self.settings["scheduler"])

    @cached_property
    def pfs(self) -> HerdPfs:
        # Imported here: the S3 backend pulls in boto3, which costs ~0.3 s at startup.
        from scheduler.pfs_api import HerdPfs
        from storage.factory import open_object_store

        return HerdPfs(open_object_store(self.storage_settings))

    @property
    def pipelines(self) -> Pipelines:
        from scheduler.pipelines import Pipelines

        return Pipelines(self.pfs)

    @property
    def jobs(self) -> JobQueries:
        from scheduler.queries import JobQueries

        return JobQueries(self.pfs, settle=self.settle)

    def settle(self) -> None:
        """Run the jobs owed now, in this process, unless a scheduler service owns them (HERD_BROKER)."""
        from storage.layout import PIPELINES_PREFIX

        if self.scheduler_settings.broker:
            self._wake_the_scheduler()
            return
        if not self.pfs.objects.list_children(PIPELINES_PREFIX):
            return  # nothing is owed without a pipeline: the scheduler is not even loaded (~0.15 s)
        from scheduler.cli.embedded import settle

        settle(self.pfs, self.scheduler_settings, self.settings["worker"], self.storage_settings)


    def _wake_the_scheduler(self) -> None:
        """Tell the scheduler service a change may owe jobs, so it passes now rather than at its
        next reconcile; only a hint: a broker that is away fails nothing (the pass comes anyway)."""
        settings = self.scheduler_settings
        assert settings.broker
        broker = open_broker(settings.broker, settings.queue)
        try:
            broker.wake()
        except HerdError as exc:
            log.debug("could not wake the scheduler: %s", exc)
        finally:
            broker.close()


def open_herd(settings: dict[str, BaseSettings] | None = None) -> Herd:
    """The Python API, configured from HERD_* like the CLI (or from `settings`, as loaded by
    `load_all_settings`). Nothing is opened until first used. With HERD_ADDRESS, the same API
    through that `herd serve` (scheduler/remote/), which holds storage and runs the jobs."""
    settings = settings if settings is not None else load_all_settings()
    remote = cast("RemoteSettings | None", settings.get("remote"))
    if remote is not None and remote.address:
        from scheduler.remote.herd import RemoteHerd
        from scheduler.remote.token_file import config_dir, read_token

        token = remote.token.get_secret_value() if remote.token else read_token(config_dir(remote.config_dir))
        return cast(Herd, RemoteHerd(remote.address, token))
    return Herd(settings)


def serve(herd: Herd, host: str, port: int) -> None:
    """`herd serve`: the HTTP API (scheduler/server/) over `herd`, until interrupted."""
    with server_part("herd serve"):
        import uvicorn

        from scheduler.server.app import make_app

    # Stopping waits this long for answers in progress, then ends them: a get-logs -f follows
    # for ever and would otherwise keep the server from stopping.
    uvicorn.run(make_app(herd), host=host, port=port, log_level="info", access_log=False,
                timeout_graceful_shutdown=SERVE_SHUTDOWN_SECONDS)


SERVE_SHUTDOWN_SECONDS = 5


@contextmanager
def server_part(what: str) -> Iterator[None]:
    """Around the imports of `herd serve`: a missing package of the server extra is one line."""
    try:
        yield
    except ModuleNotFoundError as exc:
        package = (exc.name or "").partition(".")[0]
        if package not in ("fastapi", "uvicorn", "starlette", "jinja2"):
            raise
        raise MissingPackage(f"{what} needs the Python package '{package}', which is not installed: "
                             "pip install 'herd[server]'") from None


def load_all_settings() -> dict[str, BaseSettings]:
    """Every settings class loaded from the environment; InvalidArgument naming the first bad variable."""
    from storage.setting_types import load_settings

    return {name: load_settings(cls) for name, cls in settings_classes().items()}


def settings_classes() -> dict[str, type[BaseSettings]]:
    """Every settings class a command may read, by its variables' owner. All are loaded before a
    command runs, so a bad variable is refused before anything is written (HERD_PARALLELISM=abc)."""
    from scheduler.remote.settings import RemoteSettings
    from scheduler.server.settings import ServerSettings
    from scheduler.settings import SchedulerSettings
    from storage.settings import FailpointSettings, StorageSettings
    from worker.settings import WorkerSettings

    return {
        "storage": StorageSettings, "failpoints": FailpointSettings, "scheduler": SchedulerSettings,
        "worker": WorkerSettings, "remote": RemoteSettings, "server": ServerSettings,
    }


def embedded_dispatcher(objects: ObjectStore, threads: int, worker_settings: Any = None) -> InProcessDispatcher:
    """The embedded default's dispatcher: `worker.datum.process_batch` on threads of this process.

    `worker_settings`: the entry point's worker.settings.WorkerSettings (None: read by the worker)."""
    from scheduler.dispatch_inprocess import InProcessDispatcher
    from worker.context import release_context
    from worker.datum import process_batch

    if worker_settings is not None and worker_settings.runtime == "docker":
        with cluster_part("HERD_RUNTIME=docker"):
            import worker.docker_runtime  # noqa: F401 - its docker SDK, checked before any job starts
    return InProcessDispatcher(
        objects, threads, run_batch=partial(process_batch, settings=worker_settings), release=release_context,
    )


def worker_app(worker_settings: Any, storage_settings: Any) -> Any:
    """The Celery app `herd worker` runs (worker/app.py), built from the settings loaded once."""
    with cluster_part("herd worker"):
        from worker.app import make_app

    return make_app(worker_settings, storage_settings)


def run_scheduler(pfs: Pfs, settings: SchedulerSettings, storage_settings: StorageSettings | None = None) -> None:
    """`herd scheduler`: the reconcile loop sending batches to Celery workers (scheduler/service.py)."""
    with cluster_part("herd scheduler"):
        from scheduler.service import run_scheduler as run

    run(pfs, settings, storage_settings)


def open_broker(url: str, queue: str) -> Broker:
    """The broker's Redis (HERD_BROKER, HERD_QUEUE), for the CLI's watch of the scheduler service."""
    with cluster_part("HERD_BROKER"):
        from scheduler.broker import Broker

    return Broker(url, queue)
