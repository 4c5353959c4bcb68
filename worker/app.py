"""The Celery app of `herd worker`: broker and queue from WorkerSettings, and the settings that
make Celery on Redis redeliver rather than lose (docs/design.md, Distributed execution).

Celery is only a lossy, duplicating hint here: storage holds the truth, herd counts attempts,
and a live lease makes a duplicate delivery step aside (worker/datum.py).

Importing this module reads no setting and opens nothing: `herd worker` loads the settings once
and calls `make_app`; its pool processes are forked from it and inherit the app.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import ExitStack
from typing import Any

from celery import Celery
from celery.signals import (
    setup_logging, task_postrun, task_prerun, worker_process_init, worker_process_shutdown, worker_ready,
    worker_shutdown,
)

from scheduler.logging_setup import configure_logging, log_context
from scheduler.messages import BROKER_CONNECTION, WIRE_CONF
from storage.errors import HerdError, InvalidArgument
from storage.factory import open_object_store
from storage.objects import ObjectStore
from storage.settings import StorageSettings
from worker import metrics
from worker.context import WorkerContext, close_contexts, context_for
from worker.heartbeat import NodeHeartbeat
from worker.settings import WorkerSettings
from worker.tasks import register_tasks

log = logging.getLogger(__name__)

_OPEN = "herd.open_storage"  # dispatch_uid of the signal handlers, so a second app replaces them
_CLOSE = "herd.close_sessions"
_LOGGING = "herd.setup_logging"
_TASK_CONTEXT = ("herd.log_context_on", "herd.log_context_off")


def make_app(settings: WorkerSettings, storage: StorageSettings) -> Celery:
    """The worker's Celery app, its tasks registered, built from settings loaded once by the caller."""
    if not settings.broker:
        raise InvalidArgument("HERD_BROKER is not set: herd worker needs the broker's Redis URL (redis://host:6379/0)")
    app = Celery("herd", broker=settings.broker, backend=settings.broker)
    app.conf.update(
        task_default_queue=settings.queue,
        worker_concurrency=settings.concurrency,
        # Acknowledge after the batch ran, and give the batch back when its process dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One batch per process at a time: a batch waiting behind a long one could run elsewhere.
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        # After a broker connection loss the unacked batch is redelivered: stop our copy first.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker outlives a broker restart
        broker_transport_options={
            # A batch taken by a worker that died comes back after visibility_timeout; kombu's
            # default sweep runs every ~100 s, so sweep every few seconds and on every call.
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": max(1.0, settings.visibility_timeout / 5),
            "unacked_restore_throttle": 1,
            **BROKER_CONNECTION,
        },
        **WIRE_CONF,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
    )
    contexts = PoolContexts(settings, storage)
    register_tasks(app, contexts.context)

    def open_storage(**_: object) -> None:
        """Open storage in each new pool process before its first batch (boto3 alone takes ~0.3 s)."""
        try:
            contexts.context()
        except HerdError as exc:  # the first batch reports it properly
            log.warning("cannot open storage yet: %s", exc)

    def close_sessions(**_: object) -> None:
        """End this pool process's warm sessions (containers) when it stops."""
        close_contexts()
        metrics.process_ended()  # its busy slot leaves the worker's sum; its totals stay

    handlers = ((worker_process_init, open_storage, _OPEN), (worker_process_shutdown, close_sessions, _CLOSE))
    for signal, handler, uid in handlers:
        signal.disconnect(dispatch_uid=uid)
        signal.connect(handler, weak=False, dispatch_uid=uid)
    _install_heartbeat(settings)  # for `herd status`: one record per node, from its main process
    _json_logs(settings.log_format == "json")
    if settings.metrics_port is not None:  # HERD_METRICS_PORT: served by this process, before the pool forks
        metrics.serve(settings.metrics_port)
        log.info("metrics on http://0.0.0.0:%d/metrics", settings.metrics_port)
    return app


def _json_logs(on: bool) -> None:
    """HERD_LOG_FORMAT=json: Celery leaves logging to a `setup_logging` receiver, in the main
    process and in each pool process; human (the default) keeps Celery's own format."""
    setup_logging.disconnect(dispatch_uid=_LOGGING)
    if on:
        def json_logging(loglevel: int | str | None = None, **_: object) -> None:
            configure_logging("worker", "json", loglevel or logging.INFO)

        setup_logging.connect(json_logging, weak=False, dispatch_uid=_LOGGING)
        # Until Celery calls it (with the worker's log level): what Celery says before that, such
        # as its warning about running as root, is JSON too.
        configure_logging("worker", "json", logging.INFO)


_task_contexts: dict[str, ExitStack] = {}


def _job_context_on(task_id: str = "", args: Any = None, **_: object) -> None:
    """Before a batch task runs: its records (Celery's "succeeded" line included) name its job."""
    message = args[0] if isinstance(args, (list, tuple)) and args else None
    job = message.get("job_id") if isinstance(message, dict) else None
    stack = ExitStack()
    stack.enter_context(log_context(job=str(job) if job else None))
    _task_contexts[task_id] = stack


def _job_context_off(task_id: str = "", **_: object) -> None:
    stack = _task_contexts.pop(task_id, None)
    try:
        if stack is not None:
            stack.close()
    except ValueError:  # another context than prerun's (green-thread pools): nothing of ours is left set
        pass


for _signal, _handler, _uid in ((task_prerun, _job_context_on, _TASK_CONTEXT[0]),
                                (task_postrun, _job_context_off, _TASK_CONTEXT[1])):
    _signal.connect(_handler, weak=False, dispatch_uid=_uid)


def _install_heartbeat(settings: WorkerSettings) -> None:
    """Connect the node's heartbeat (worker/heartbeat.py) to Celery's signals: beat from the main
    process once ready, stop at shutdown, count datums where batches run (pool processes)."""
    node = NodeHeartbeat(settings)
    handlers = ((worker_ready, node.started, "herd.heartbeat.ready"),
                (worker_shutdown, node.stopped, "herd.heartbeat.shutdown"),
                (task_postrun, node.finished, "herd.heartbeat.count"))
    for signal, handler, uid in handlers:
        signal.disconnect(dispatch_uid=uid)
        signal.connect(handler, weak=False, dispatch_uid=uid)


def __getattr__(name: str) -> Celery:
    """`celery -A worker.app flower` (or `inspect`, `events`): Celery's own programs find the app
    as `worker.app.app`, built here from HERD_* on first use (PEP 562), so importing this module
    still builds nothing. Never a metrics endpoint: that is `herd worker`'s."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from storage.setting_types import load_settings

    settings = load_settings(WorkerSettings).model_copy(update={"metrics_port": None})
    return make_app(settings, load_settings(StorageSettings))


class PoolContexts:
    """The worker context of each pool process: its own object store (connections are never
    shared across a fork) and its own default worker id, built from the parent's settings."""

    def __init__(self, settings: WorkerSettings, storage: StorageSettings) -> None:
        self._settings = settings
        self._storage = storage
        self._lock = threading.Lock()
        self._opened: tuple[int, ObjectStore, WorkerSettings] | None = None

    def context(self) -> WorkerContext:
        """This process's context (opened on its first call in each process)."""
        with self._lock:
            if self._opened is None or self._opened[0] != os.getpid():
                objects = open_object_store(self._storage)
                self._opened = (os.getpid(), objects, self._settings.for_this_process())
            _, objects, settings = self._opened
        return context_for(objects, settings=settings)
