"""A worker node's heartbeat (worker/heartbeat.py) as the scheduler side reads it (scheduler/broker.py).

The two sides spell the Redis keys separately (the worker may not import the broker adapter),
so this test is their contract: on a real redis-server, what the worker writes is what
`herd status` reads, the datums-done counter adds up across processes, a clean stop removes
the record, and a killed node's record stays (to be named gone) with a TTL.
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest

from scheduler.broker import Broker
from scheduler.cluster import alive
from scheduler.heartbeat import Heartbeat
from tests.fixtures.redis import RedisServer
from tests.fixtures.services import wait_until
from worker.heartbeat import NodeHeartbeat
from worker.settings import WorkerSettings


@pytest.fixture
def broker_url(redis_server: RedisServer) -> str:
    if not redis_server.running:
        redis_server.start()
    with redis_server.client(db=14) as conn:
        conn.flushdb()
    return f"redis://127.0.0.1:{redis_server.port}/14"


def settings(url: str, **fields: object) -> WorkerSettings:
    return WorkerSettings(broker=url, queue="q1", heartbeat_seconds=0.2, **fields)


def test_the_scheduler_side_reads_what_a_worker_node_writes(broker_url: str) -> None:
    node = NodeHeartbeat(settings(broker_url, worker_id="w7", runtime="local"))
    broker = Broker(broker_url, "q1")
    try:
        consumer = SimpleNamespace(hostname="herd-1@box", controller=SimpleNamespace(concurrency=3))
        node.started(sender=consumer)
        assert wait_until(lambda: bool(broker.heartbeats("worker")), timeout=10, interval=0.05)
        [record] = broker.heartbeats("worker")
        assert record["name"] == "w7" and record["node"] == "herd-1@box" and record["concurrency"] == 3
        assert record["runtime"] == "local" and record["pid"] == os.getpid() and record["datums_done"] == 0
        assert alive(record, broker.now()) and record["window"] == pytest.approx(0.6)

        # Batches that ended count their done and failed datums; retries and errors count nothing
        node.finished(retval={"job_id": "j", "done": [1, 2], "failed": [3]})
        node.finished(retval={"job_id": "j", "done": [4]})
        node.finished(retval=RuntimeError("retry"))
        assert broker.heartbeats("worker")[0]["datums_done"] == 4

        # Each stored outcome wakes the scheduler: one wake waits however many came, and it
        # ends the scheduler's wait at once
        assert broker.client.lrange("herd:q1:wake", 0, -1) == [b"1"]
        assert 0 < broker.client.ttl("herd:q1:wake") <= 60
        assert broker.woken(1.0) and not broker.woken(0.01)
        node.finished(retval={"job_id": "j", "deferred": [5]})  # an outcome with no datum ended wakes it too
        assert broker.woken(1.0) and broker.heartbeats("worker")[0]["datums_done"] == 4
        node.finished(retval=RuntimeError("retry"))
        assert not broker.woken(0.01)

        # A clean stop removes the record and its counter
        node.stopped()
        assert broker.heartbeats("worker") == []
        assert broker.client.keys("herd:q1:*") == []
    finally:
        node.stopped()
        broker.close()


def test_a_node_that_stops_beating_is_kept_gone_with_a_ttl(broker_url: str) -> None:
    broker = Broker(broker_url, "q1")
    try:
        beat = Heartbeat(broker, "scheduler", "h-1-abc", lambda: {"host": "h", "pid": 1}, every=0.2)
        beat.beat()  # one beat, then silence: as a SIGKILLed process leaves it
        [record] = broker.heartbeats("scheduler")
        assert record["name"] == "h-1-abc" and alive(record, broker.now())
        ttl = broker.client.ttl("herd:q1:heartbeat:scheduler:h-1-abc")
        assert 0 < ttl <= 60  # max(60 s, 300 beats): named gone for a while, then dropped by Redis
        time.sleep(0.7)
        assert not alive(broker.heartbeats("scheduler")[0], broker.now())
    finally:
        broker.close()


def test_queue_depth_is_the_length_of_celerys_list(broker_url: str) -> None:
    broker = Broker(broker_url, "q1")
    try:
        assert broker.queue_depth() == 0
        broker.client.rpush("q1", b"a", b"b")
        assert broker.queue_depth() == 2
    finally:
        broker.close()
