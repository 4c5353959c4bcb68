"""Batches to Celery workers: `send_task` by name through a minimal client-side Celery app.

The scheduler never imports worker code; it names the task (`herd.process_batch`) and the
queue. What is in flight is a hint built from three places, cheapest first:
1. sent marks in Redis (scheduler/broker.py): a batch sent less than `resend_seconds` ago;
2. the batch outcomes workers leave in Redis (the result backend): done, failed or deferred;
3. storage, only for batches past `resend_seconds` while the queue is empty: a datum whose
   latest attempt holds a live lease is still running; one with a result is done; anything
   else was lost (a worker killed with its message, a task that raised) and is sent again.
The broker's own redelivery (visibility timeout) usually brings lost batches back first.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from celery import Celery
from kombu.exceptions import KombuError

from scheduler.broker import HEALTH_CHECK_INTERVAL, SOCKET_TIMEOUT, Broker, Sent
from scheduler.messages import PROCESS_BATCH, BatchOutcome, DatumBatch
from scheduler.settings import SchedulerSettings
from scheduler.store import RecordStore
from storage.errors import BrokerUnavailable

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how often wait() looks for batch outcomes
CAPACITY_REFRESH = 15.0  # how often the worker processes are counted
WATCH = "watch-"  # marks of datums deferred to a lease holder: no outcome of their own
OUTCOME_TTL = 3600.0  # seconds; outcomes expire in Redis after this (result_expires)


class CeleryDispatcher:
    """Sends batches by task name; tracks them with marks, outcomes and storage leases."""

    def __init__(self, broker: Broker, records: RecordStore, settings: SchedulerSettings) -> None:
        self.broker = broker
        self.records = records
        self.queue = settings.queue
        self.resend_seconds = settings.resend_seconds
        self._capacity = max(1, settings.parallelism)
        self._tasks: dict[str, tuple[str, float]] = {}  # awaited outcomes: task id -> (job id, since)
        self._outcomes: list[BatchOutcome] = []
        self._stop = threading.Event()
        self._counter: threading.Thread | None = None
        self.app = _client_app(broker.url, settings.queue)
        self.results = _client_app(broker.url, settings.queue, results=True).backend

    # Dispatcher protocol -------------------------------------------------------------------
    def submit(self, batch: DatumBatch) -> None:
        task_id = uuid.uuid4().hex
        with self._errors(f"send a batch of job '{batch.job_id}'"):
            self.app.send_task(PROCESS_BATCH, args=[batch.model_dump(mode="json")], task_id=task_id, queue=self.queue)
        # Marked after the publish: a crash in between costs a duplicate, never a lost batch.
        self.broker.mark_sent(batch.job_id, task_id, Sent(at=self.broker.now(), datums=batch.datums))
        self._tasks[task_id] = (batch.job_id, time.monotonic())

    def in_flight(self, job_id: str) -> set[int]:
        marks = self.broker.sent(job_id)
        for task_id in marks:
            if not task_id.startswith(WATCH):
                self._tasks.setdefault(task_id, (job_id, time.monotonic()))  # a restarted scheduler adopts them
        self._collect()
        marks = self.broker.sent(job_id)
        now = self.broker.now()
        # Outcomes taken but not yet handed over by wait(): the loop does not know them yet.
        flying = {i for o in self._outcomes if o.job_id == job_id for i in (*o.done, *o.failed)}
        stale = {t: m for t, m in marks.items() if now - m.at >= self.resend_seconds}
        for task_id, mark in marks.items():
            if task_id not in stale:
                flying.update(mark.datums)
        if stale and self.queue_size() > 0:
            # Batches still wait in the queue: an old mark may just be behind them.
            return flying | {i for mark in stale.values() for i in mark.datums}
        return flying | self._recheck(job_id, stale, now)

    def wait(self, timeout: float) -> list[BatchOutcome]:
        """Poll the outcomes of sent batches until one arrives or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            self._collect()
            left = deadline - time.monotonic()
            if self._outcomes or left <= 0:
                out, self._outcomes = self._outcomes, []
                return out
            time.sleep(min(POLL_SECONDS, left))

    def close(self) -> None:
        self._stop.set()
        self.app.close()
        self.results.app.close()

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
        with self._errors("read the queue length"), self.app.pool.acquire(block=True) as conn:
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
                self._settle(task_id, self.results.decode(payload))

    def _settle(self, task_id: str, meta: dict) -> None:
        status = meta.get("status")
        if status not in ("SUCCESS", "FAILURE"):
            return  # RETRY after a cancelled run: redelivered, its outcome comes later
        job_id, _ = self._tasks.pop(task_id)
        if status == "FAILURE":
            # The task raised (storage or broker away): once its mark is stale, storage says
            # which of its datums to send again. A watch mark keeps the time, not the task id.
            log.warning("a batch of job '%s' failed in its worker: %s", job_id, meta.get("result"))
            mark = self.broker.sent(job_id).get(task_id)
            if mark is not None:
                self.broker.mark_sent(job_id, WATCH + uuid.uuid4().hex, mark)
            self.broker.forget(job_id, [task_id])
            return
        outcome = BatchOutcome.model_validate(meta["result"])
        if outcome.deferred:
            watch = Sent(at=self.broker.now(), datums=outcome.deferred)
            self.broker.mark_sent(job_id, WATCH + uuid.uuid4().hex, watch)
        self.broker.forget(job_id, [task_id])
        self._outcomes.append(outcome)

    def _recheck(self, job_id: str, stale: dict[str, Sent], now: float) -> set[int]:
        """Stale marks: keep datums a live lease holds, report finished ones, drop the lost."""
        plan = self.records.read_plan(job_id)
        leased: set[int] = set()
        done: list[int] = []
        for mark in stale.values():
            for index in mark.datums:
                if plan is None or index >= len(plan.datums):
                    continue
                datum_id = plan.datums[index].id
                if self.records.read_result(job_id, datum_id) is not None:
                    done.append(index)
                elif _live(self.records.latest_attempt(job_id, datum_id), now):
                    leased.add(index)
        lost = {i for mark in stale.values() for i in mark.datums} - leased - set(done)
        if lost:
            log.info("job '%s': %d datum(s) sent long ago have no result and no live lease; sending again", job_id, len(lost))
        # The marks go; their outcomes are still taken if they come (a slow batch, not a lost one).
        self.broker.forget(job_id, stale)
        if leased:
            self.broker.mark_sent(job_id, WATCH + uuid.uuid4().hex, Sent(at=now, datums=tuple(sorted(leased))))
        if done:
            self._outcomes.append(BatchOutcome(job_id=job_id, done=tuple(done)))
        return leased | set(done)  # done ones stay in flight until wait() hands them over

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Broker connection errors from kombu, celery or redis-py become BrokerUnavailable."""
        try:
            yield
        except (KombuError, redis.RedisError, OSError) as exc:
            raise BrokerUnavailable(f"the broker at {self.broker.where} is unreachable ({action}): {exc}") from None


def _live(attempt: dict | None, now: float) -> bool:
    return attempt is not None and float(attempt.get("lease_until", 0)) > now


def _client_app(url: str, queue: str, results: bool = False) -> Celery:
    """A Celery app that only sends tasks, or (`results`) only reads outcomes; no task code.

    Two apps because a sender with a Redis result backend subscribes to every task it sends,
    and this scheduler reads outcomes by polling, not by subscription.
    """
    app = Celery("herd-scheduler", broker=url, backend=url if results else None, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # Bounded publish retries: a broker that is down is reported, not waited on forever.
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0},
        broker_connection_retry_on_startup=False,
        broker_connection_max_retries=2,
        broker_transport_options={
            "socket_timeout": SOCKET_TIMEOUT,
            "socket_connect_timeout": SOCKET_TIMEOUT,
            "health_check_interval": HEALTH_CHECK_INTERVAL,
        },
        redis_socket_timeout=SOCKET_TIMEOUT,
        redis_socket_connect_timeout=SOCKET_TIMEOUT,
        redis_backend_health_check_interval=HEALTH_CHECK_INTERVAL,
        result_expires=int(OUTCOME_TTL),
    )
    return app
