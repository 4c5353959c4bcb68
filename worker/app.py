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

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

from scheduler.messages import BROKER_CONNECTION, WIRE_CONF
from storage.errors import HerdError, InvalidArgument
from storage.factory import open_object_store
from storage.objects import ObjectStore
from storage.settings import StorageSettings
from worker.context import WorkerContext, close_contexts, context_for
from worker.settings import WorkerSettings
from worker.tasks import register_tasks

log = logging.getLogger(__name__)

_OPEN = "herd.open_storage"  # dispatch_uid of the signal handlers, so a second app replaces them
_CLOSE = "herd.close_sessions"


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

    handlers = ((worker_process_init, open_storage, _OPEN), (worker_process_shutdown, close_sessions, _CLOSE))
    for signal, handler, uid in handlers:
        signal.disconnect(dispatch_uid=uid)
        signal.connect(handler, weak=False, dispatch_uid=uid)
    return app


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
