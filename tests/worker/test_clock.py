"""The worker's lease clock (worker/clock.py): the shared broker clock, never raising, so a broker
outage does not stop datums. Real redis-server."""

from __future__ import annotations

import time

from tests.fixtures.redis import RedisServer
from tests.fixtures.services import free_port
from worker.clock import BrokerClock


def test_tells_the_brokers_time(redis_server: RedisServer) -> None:
    client = redis_server.client()
    try:
        seconds, micros = client.time()
        now = BrokerClock(redis_server.url)()
        later, micros_later = client.time()
    finally:
        client.close()
    assert seconds + micros / 1e6 - 0.05 <= now <= later + micros_later / 1e6 + 0.05


def test_without_a_broker_it_is_local_time() -> None:
    before = time.time()
    now = BrokerClock(f"redis://127.0.0.1:{free_port()}/0")()
    assert before <= now <= time.time()
