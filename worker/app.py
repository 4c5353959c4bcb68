"""The Celery app of `herd worker`: broker and queue from WorkerSettings, and the settings that
make Celery on Redis redeliver rather than lose (docs: ../shared/reference/reliability.md).

Celery is only a lossy, duplicating hint here: storage holds the truth, herd counts attempts,
and a live lease makes a duplicate delivery step aside (worker/datum.py).
"""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

from storage.errors import HerdError, InvalidArgument
from worker.context import close_contexts, context_for
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

SOCKET_TIMEOUT = 5.0  # a vanished broker must not block a publish or an ack forever
HEALTH_CHECK_INTERVAL = 10  # seconds; half-open broker connections are dropped and redone

settings = WorkerSettings()
if not settings.broker:
    raise InvalidArgument("HERD_BROKER is not set: herd worker needs the broker's Redis URL (redis://host:6379/0)")

app = Celery("herd", broker=settings.broker, backend=settings.broker, include=["worker.tasks"])
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
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
    },
    # The batch outcome is a progress hint for the scheduler (expires; storage is the truth).
    result_expires=3600,
    redis_socket_timeout=SOCKET_TIMEOUT,
    redis_socket_connect_timeout=SOCKET_TIMEOUT,
    redis_backend_health_check_interval=HEALTH_CHECK_INTERVAL,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_send_task_events=False,
    worker_hijack_root_logger=False,
)


@worker_process_init.connect
def _open_storage(**_: object) -> None:
    """Open storage in each new pool process before its first batch (boto3 alone takes ~0.3 s)."""
    try:
        context_for(None)
    except HerdError as exc:  # the first batch reports it properly
        log.warning("cannot open storage yet: %s", exc)


@worker_process_shutdown.connect
def _close_sessions(**_: object) -> None:
    """End this pool process's warm sessions (containers) when it stops."""
    close_contexts()
