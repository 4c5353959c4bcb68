"""The heartbeat of a `herd worker` node, for `herd status` and `herd version`.

One record per node, written every HERD_HEARTBEAT_SECONDS by a thread of its main process
from Celery's `worker_ready` on (pool processes do not beat each on their own), removed at
`worker_shutdown` (a clean stop: the node left, it is not gone). Datums that ended are counted
where batches run, in the pool processes (`task_postrun`), into a counter beside the record;
the same round trip wakes the scheduler, so it collects the batch's outcome (stored by Celery
before `task_postrun`) at once, not at its next poll of the result backend.
worker/app.py connects the signals; the embedded default runs no worker and writes none.

The wire format is the one scheduler/heartbeat.py documents and scheduler/broker.py reads
(`herd:<queue>:heartbeat:worker:<name>`, `herd:<queue>:done:<name>`, `herd:<queue>:wake`);
the worker does not import those modules (docs/design.md), so it speaks to Redis itself, as
worker/clock.py does.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

import redis

from scheduler.version import herd_version
from scheduler.clock import redact
from worker.clock import BrokerClock
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

WAKE_TTL = 60  # as scheduler/broker.py: a wake nobody took is old news
MISSES = 3  # as scheduler/heartbeat.py: beats missed before a node counts as gone
KEEP_BEATS = 300  # beats a record outlives its last beat, so `herd status` can name a gone node
TIMEOUT_SECONDS = 2.0


def worker_name(settings: WorkerSettings) -> str:
    """The node's name in `herd status`: HERD_WORKER_ID when set, else `<host>-<pid>` of the main process."""
    return settings.worker_id if "worker_id" in settings.model_fields_set else f"{socket.gethostname()}-{os.getpid()}"


class NodeHeartbeat:
    """The heartbeat of one worker node and its datums-done counter. Built in the main process
    before the pool forks, so every pool process counts under the node's name."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.name = worker_name(settings)
        self.every = settings.heartbeat_seconds
        prefix = f"herd:{settings.queue}"
        self.key = f"{prefix}:heartbeat:worker:{self.name}"
        self.done_key = f"{prefix}:done:{self.name}"
        self.wake_key = f"{prefix}:wake"
        self.keep = max(60, int(self.every * KEEP_BEATS))
        self._record: dict[str, object] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: tuple[int, redis.Redis] | None = None  # (pid, client): never used across a fork
        self._lock = threading.Lock()
        self._told: str | None = None
        self._clock: BrokerClock | None = None

    def client(self) -> redis.Redis:
        with self._lock:
            if self._client is None or self._client[0] != os.getpid():
                url = str(self.settings.broker)
                conn = redis.Redis.from_url(url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS)
                self._client = (os.getpid(), conn)
            return self._client[1]

    def started(self, sender: Any = None, **_: object) -> None:
        """`worker_ready` (main process): the consumer is connected; beat with what it runs."""
        controller = getattr(sender, "controller", None)
        concurrency = getattr(controller, "concurrency", None) or self.settings.concurrency
        self._record = {
            "host": socket.gethostname(), "pid": os.getpid(), "node": str(getattr(sender, "hostname", "") or ""),
            "concurrency": int(concurrency), "runtime": self.settings.runtime, "version": herd_version(),
            "since": time.time(),
        }
        if self._thread is not None and self._thread.is_alive():
            return  # ready again after a broker reconnection: the same thread beats on
        self._clock = BrokerClock(str(self.settings.broker))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="herd-heartbeat-worker", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        assert self._clock is not None, "beat() before started()"
        body = {**self._record, "heartbeat": self._clock(), "window": self.every * MISSES}
        self.client().set(self.key, json.dumps(body, separators=(",", ":"), sort_keys=True), ex=self.keep)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
                self._told = None
            except redis.RedisError as exc:
                if str(exc) != self._told:  # once per outage, not once per beat
                    log.warning("heartbeat not written to the broker at %s: %s", redact(str(self.settings.broker)), exc)
                    self._told = str(exc)
            self._stop.wait(self.every)

    def stopped(self, **_: object) -> None:
        """`worker_shutdown` (main process): stop beating and remove the record."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
            try:
                self.client().delete(self.key, self.done_key)
            except redis.RedisError as exc:
                log.warning("heartbeat record not removed (it expires by itself): %s", exc)

    def finished(self, retval: Any = None, **_: object) -> None:
        """`task_postrun` in the pool process that ran a batch: its outcome is stored; count its
        datums that ended and wake the scheduler to take the outcome (its datums' next batches,
        or the job's end, follow at once: up to a poll, 0.1 s, sooner)."""
        if not isinstance(retval, dict):  # a retry (outage) or an error: no BatchOutcome
            return
        datums = len(retval.get("done", ())) + len(retval.get("failed", ()))
        try:
            pipe = self.client().pipeline(transaction=False)
            if datums:
                pipe.incrby(self.done_key, datums)
                pipe.expire(self.done_key, self.keep)
            pipe.lpush(self.wake_key, "1")
            pipe.ltrim(self.wake_key, 0, 0)  # one wake is as good as many
            pipe.expire(self.wake_key, WAKE_TTL)
            pipe.execute()
        except redis.RedisError as exc:  # hints: never fails the batch (the scheduler polls anyway)
            log.warning("datums done not counted, scheduler not woken: %s", exc)
