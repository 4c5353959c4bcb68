"""Batches to Celery workers: `send_task` by name through a minimal client-side Celery app.

The scheduler never imports worker code; it names the task (`herd.process_batch`) and the
queue. Each batch sent is marked in Redis (scheduler/broker.py) with the time it was sent; the
outcome a worker leaves in the result backend removes the mark when `wait` collects it. What a
mark older than `resend_seconds` means is decided by scheduler/reconcile.py, not here.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import redis
from celery import Celery
from kombu.exceptions import KombuError

from scheduler.broker import Broker, Sent
from scheduler.messages import BROKER_CONNECTION, OUTCOME_TTL, PROCESS_BATCH, WIRE_CONF, BatchOutcome, DatumBatch
from scheduler.settings import SchedulerSettings
from scheduler.reconcile import Mark
from storage.errors import BrokerUnavailable

if TYPE_CHECKING:
    from celery.backends.redis import RedisBackend
    from kombu.connection import ConnectionPool

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how often wait() looks for batch outcomes
CAPACITY_REFRESH = 15.0  # how often the worker processes are counted
WATCH = "watch-"  # marks of datums a lease holder runs: no outcome of their own


class CeleryDispatcher:
    """Sends batches by task name; marks them sent in Redis; collects their outcomes."""

    def __init__(self, broker: Broker, settings: SchedulerSettings) -> None:
        self.broker = broker
        self.queue = settings.queue
        self._capacity = max(1, settings.parallelism)
        self._tasks: dict[str, tuple[str, float]] = {}  # awaited outcomes: task id -> (job id, since)
        self._outcomes: list[BatchOutcome] = []
        self._stop = threading.Event()
        self._counter: threading.Thread | None = None
        self.app = _client_app(broker.url, settings.queue)
        self._results_app = _client_app(broker.url, settings.queue, results=True)
        # backend=<the broker's redis:// URL>: Celery builds a RedisBackend, a key-value backend.
        self.results = cast("RedisBackend", self._results_app.backend)
        # The pipeline of a job id, for the task's label in Flower and worker logs (the service
        # sets it from the reconcile loop; unknown: the label names the job only).
        self.pipeline_of: Callable[[str], str | None] = lambda job_id: None

    # Dispatcher protocol -------------------------------------------------------------------
    def submit(self, batch: DatumBatch) -> None:
        task_id = uuid.uuid4().hex
        with self._errors(f"send a batch of job '{batch.job_id}'"):
            self.app.send_task(
                PROCESS_BATCH, args=[batch.model_dump(mode="json")], task_id=task_id, queue=self.queue,
                argsrepr=batch_label(self.pipeline_of(batch.job_id), batch), kwargsrepr="{}",
            )
        # Marked after the publish: a crash in between costs a duplicate, never a lost batch.
        self.broker.mark_sent(batch.job_id, task_id, Sent(at=self.broker.now(), datums=batch.datums))
        self._tasks[task_id] = (batch.job_id, time.monotonic())

    def sent(self, job_id: str) -> list[Mark]:
        marks = self.broker.sent(job_id)
        for task_id in marks:
            if not task_id.startswith(WATCH):
                self._tasks.setdefault(task_id, (job_id, time.monotonic()))  # a restarted scheduler awaits them too
        return [Mark(key, m.at, m.datums, watch=key.startswith(WATCH)) for key, m in marks.items()]

    def forget(self, job_id: str, keys: tuple[str, ...]) -> None:
        # Their outcomes are still taken if they come (a slow batch, not a lost one).
        self.broker.forget(job_id, keys)

    def watch(self, job_id: str, datums: tuple[int, ...]) -> None:
        self.broker.mark_sent(job_id, WATCH + uuid.uuid4().hex, Sent(at=self.broker.now(), datums=datums))

    def now(self) -> float:
        return self.broker.now()

    def wait(self, timeout: float) -> list[BatchOutcome]:
        """Poll the outcomes of sent batches until one arrives, a change wakes the scheduler
        (Broker.wake: then none, and the next pass starts at once) or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            self._collect()
            left = deadline - time.monotonic()
            if self._outcomes or left <= 0:
                out, self._outcomes = self._outcomes, []
                return out
            if self.broker.woken(min(POLL_SECONDS, left)):  # waits there instead of sleeping
                self._collect()
                out, self._outcomes = self._outcomes, []
                return out

    def close(self) -> None:
        self._stop.set()
        self.app.close()
        self._results_app.close()

    # capacity ----------------------------------------------------------------------------
    def capacity(self) -> int:
        """Worker processes listening (counted in the background every 15 s; a guess before)."""
        if self._counter is None:
            self._counter = threading.Thread(target=self._count_workers, name="herd-worker-count", daemon=True)
            self._counter.start()
        return self._capacity

    def _count_workers(self) -> None:
        while not self._stop.is_set():
            try:
                stats = self.app.control.inspect(timeout=1.0).stats() or {}
                found = sum(int(s.get("pool", {}).get("max-concurrency", 1)) for s in stats.values())
                if found:
                    self._capacity = found
            except Exception as exc:  # noqa: BLE001 - a guess stays a guess; sending does not depend on it
                log.debug("cannot count workers: %s", exc)
            self._stop.wait(CAPACITY_REFRESH)

    def queue_size(self) -> int:
        """Messages waiting in the queue (not those taken by workers)."""
        with self._errors("read the queue length"):
            # celery-types says Celery.pool is a ProducerPool; it is the broker's ConnectionPool.
            pool: ConnectionPool = self.app.pool  # type: ignore[assignment]
            with pool.acquire(block=True) as conn:
                return int(conn.default_channel.queue_declare(queue=self.queue, passive=False).message_count)

    # internals ---------------------------------------------------------------------------
    def _collect(self) -> None:
        """Take the outcomes workers left for awaited batches; forget the marks they settle."""
        expired = [t for t, (_, since) in self._tasks.items() if time.monotonic() - since > OUTCOME_TTL]
        for task_id in expired:
            del self._tasks[task_id]  # its outcome expired in Redis too; storage decides
        if not self._tasks:
            return
        ids = list(self._tasks)
        with self._errors("read batch outcomes"):
            raw = self.results.mget([self.results.get_key_for_task(t) for t in ids])
        for task_id, payload in zip(ids, raw):
            if payload is not None:
                # decode, not decode_result: a failure's exception is never rebuilt here.
                self._take_outcome(task_id, self.results.decode(payload))

    def _take_outcome(self, task_id: str, meta: dict[str, Any]) -> None:
        status = meta.get("status")
        if status not in ("SUCCESS", "FAILURE"):
            return  # RETRY (an outage gave the batch back): redelivered, its outcome comes later
        job_id, _ = self._tasks.pop(task_id)
        mark = self.broker.sent(job_id).get(task_id)
        self.broker.forget(job_id, [task_id])
        if status == "FAILURE":
            # The task raised: its datums come back without results; storage says what they need.
            log.warning("a batch of job '%s' failed in its worker: %s", job_id, meta.get("result"))
            if mark is not None:
                self._outcomes.append(BatchOutcome(job_id=job_id, deferred=mark.datums))
            return
        self._outcomes.append(BatchOutcome.model_validate(meta["result"]))

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Broker connection errors from kombu, celery or redis-py become BrokerUnavailable."""
        try:
            yield
        except (KombuError, redis.RedisError, OSError) as exc:
            raise BrokerUnavailable(f"the broker at {self.broker.where} is unreachable ({action}): {exc}") from None


def batch_label(pipeline: str | None, batch: DatumBatch) -> str:
    """What Flower and the worker's log show as a batch task's arguments (Celery's argsrepr),
    in place of the message: `pipeline=edges job=0f3c9a1b2d4e datums=12`."""
    words = [] if pipeline is None else [f"pipeline={pipeline}"]
    words += [f"job={batch.job_id[:12]}", f"datums={len(batch.datums)}"]
    return " ".join(words)


def _client_app(url: str, queue: str, results: bool = False) -> Celery:
    """A Celery app that only sends tasks, or (`results`) only reads outcomes; no task code.

    Two apps because a sender with a Redis result backend subscribes to every task it sends,
    and this scheduler reads outcomes by polling, not by subscription.
    """
    app = Celery("herd-scheduler", broker=url, backend=url if results else None, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        **WIRE_CONF,
        # Bounded publish retries: a broker that is down is reported, not waited on forever.
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0},
        broker_connection_retry_on_startup=False,
        broker_connection_max_retries=2,
        broker_transport_options=dict(BROKER_CONNECTION),
    )
    return app
