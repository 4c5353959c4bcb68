"""What the scheduler keeps in the broker's Redis besides the queue: hints, never the truth.

- sent marks: per job, which batches were sent when (`herd:<queue>:sent:<job>`, a hash of
  task id → {at, datums}). A restarted scheduler reads them instead of sending everything
  again; a wiped Redis loses them together with the queue, so everything is sent again.
- the wake: `herd:<queue>:wake`, a list of at most one item that a change (put-file, a new
  pipeline: the CLI's and the server's `settle`) pushes, and the active scheduler's wait pops,
  so a commit starts its job at once instead of at the next pass (`HERD_RECONCILE_INTERVAL`);
  a worker pushes one once a batch's outcome is stored (worker/heartbeat.py), so the scheduler
  takes it at once instead of at its next poll of the result backend.
- the clock: Redis `TIME`, so leases and marks written on different hosts are compared on one
  clock (reliability rule 7); scheduler/clock.py, shared with the worker.
Losing any of this costs duplicate messages at worst: results are create-only in storage.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from scheduler.clock import BrokerClock, redact, unreachable
from scheduler.messages import HEALTH_CHECK_INTERVAL, SOCKET_TIMEOUT

MARK_TTL = 7 * 24 * 3600  # marks of jobs nobody looks at any more go away by themselves
WAKE_TTL = 60  # a wake nobody took (no scheduler runs) is old news by the time one starts


def text(raw: bytes | str) -> str:
    """A Redis reply as text: the client does not decode (bytes), redis-py's types allow str."""
    return raw.decode() if isinstance(raw, bytes) else raw


@dataclass(frozen=True)
class Sent:
    """One batch as sent: when (broker clock) and which datums of its job."""

    at: float
    datums: tuple[int, ...]


class Broker:
    """The scheduler's Redis connection: sent marks, the broker clock, error translation."""

    def __init__(self, url: str, queue: str = "herd") -> None:
        self.url = url
        self.where = redact(url)
        self.queue = queue
        self.client = redis.Redis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT,
            health_check_interval=HEALTH_CHECK_INTERVAL,
        )
        self.clock = BrokerClock(self.client, self.where, keep_running=False)

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Translate redis-py errors into BrokerUnavailable naming the broker."""
        try:
            yield
        except redis.RedisError as exc:
            raise unreachable(self.where, action, exc) from None

    def key(self, *parts: str) -> str:
        return ":".join(("herd", self.queue, *parts))

    def now(self) -> float:
        """Unix time on the broker's clock; BrokerUnavailable when a due measurement fails."""
        return self.clock()

    def mark_sent(self, job_id: str, task_id: str, sent: Sent) -> None:
        key = self.key("sent", job_id)
        body = json.dumps({"at": sent.at, "datums": list(sent.datums)}, separators=(",", ":"))
        with self.errors(f"mark a batch of job '{job_id}' sent"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(key, task_id, body)
            pipe.expire(key, MARK_TTL)
            pipe.execute()

    def sent(self, job_id: str) -> dict[str, Sent]:
        with self.errors(f"read the sent batches of job '{job_id}'"):
            raw = self.client.hgetall(self.key("sent", job_id))
        out = {}
        for task_id, body in raw.items():
            data = json.loads(body)
            out[text(task_id)] = Sent(at=float(data["at"]), datums=tuple(int(i) for i in data["datums"]))
        return out

    def forget(self, job_id: str, task_ids: Iterable[str]) -> None:
        ids = list(task_ids)
        if ids:
            with self.errors(f"forget sent batches of job '{job_id}'"):
                self.client.hdel(self.key("sent", job_id), *ids)

    def wake(self) -> None:
        """Ask the active scheduler for a pass now: something changed that may owe a job."""
        key = self.key("wake")
        with self.errors("wake the scheduler"):
            pipe = self.client.pipeline(transaction=False)
            pipe.lpush(key, "1")
            pipe.ltrim(key, 0, 0)  # one wake is as good as many
            pipe.expire(key, WAKE_TTL)
            pipe.execute()

    def woken(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds (at most the socket timeout) for a wake; True when one came."""
        with self.errors("wait for a change"):
            return self.client.blpop([self.key("wake")], timeout=max(0.01, timeout)) is not None

    # ---- heartbeats (scheduler/heartbeat.py writes them, `herd status` reads them) -----------

    def beat(self, kind: str, name: str, record: dict[str, object], keep: float) -> None:
        """Store `record` as the latest heartbeat of process `name` (`kind`: scheduler, worker).

        The key outlives the beat by `keep` seconds, so a process that died is shown as gone
        for a while (its last heartbeat too old) before its record leaves Redis."""
        body = json.dumps(record, separators=(",", ":"), sort_keys=True)
        with self.errors(f"write the heartbeat of {kind} '{name}'"):
            self.client.set(self.key("heartbeat", kind, name), body, ex=max(1, int(keep)))

    def leave(self, kind: str, name: str) -> None:
        """Remove the heartbeat (and counter) of a process that stops cleanly: it is not gone, it left."""
        with self.errors(f"remove the heartbeat of {kind} '{name}'"):
            self.client.delete(self.key("heartbeat", kind, name), self.key("done", name))

    def heartbeats(self, kind: str) -> list[dict[str, object]]:
        """The latest heartbeat of every process of `kind` with a record, by name; a worker's
        record gains `datums_done` from its pool processes' counter."""
        prefix = self.key("heartbeat", kind, "")
        with self.errors(f"read the heartbeats of {kind}s"):
            keys = sorted(text(k) for k in self.client.scan_iter(match=f"{prefix}*", count=500))
            bodies = self.client.mget(keys) if keys else []
            names = [k[len(prefix):] for k in keys]
            counts = self.client.mget([self.key("done", n) for n in names]) if names else []
        out: list[dict[str, object]] = []
        for name, body, count in zip(names, bodies, counts):
            if body is None:  # expired between SCAN and MGET
                continue
            try:
                record = json.loads(body)
            except ValueError:
                continue  # not ours to judge; a heartbeat is a hint
            if isinstance(record, dict):
                record["name"] = name
                record["datums_done"] = int(count) if count is not None else 0
                out.append(record)
        return out

    def count_done(self, name: str, datums: int, keep: float) -> None:
        """Add `datums` to the datums-done counter of worker `name` (its pool processes call it)."""
        key = self.key("done", name)
        with self.errors(f"count the datums of worker '{name}'"):
            pipe = self.client.pipeline(transaction=False)
            pipe.incrby(key, datums)
            pipe.expire(key, max(1, int(keep)))
            pipe.execute()

    def queue_depth(self) -> int:
        """Batches waiting in the queue (Celery's Redis list of that name; taken ones are not)."""
        with self.errors(f"read the length of queue '{self.queue}'"):
            return int(self.client.llen(self.queue))

    def close(self) -> None:
        self.client.close()
