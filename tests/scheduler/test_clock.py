"""The broker clock (scheduler/clock.py), one implementation for scheduler and worker, against a
real redis-server: it reads Redis `TIME`, and a failed reading raises BrokerUnavailable naming the
broker (the scheduler) or keeps the last offset (the worker, `keep_running=True`)."""

from __future__ import annotations

import logging
import time

import pytest
import redis

from scheduler import clock
from scheduler.broker import Broker
from scheduler.clock import BrokerClock
from storage.errors import BrokerUnavailable
from tests.fixtures.redis import RedisFactory
from tests.fixtures.services import free_port


def _nobody() -> str:
    """A Redis URL with a password and nothing listening on its port."""
    return f"redis://:s3cret@127.0.0.1:{free_port()}/0"


def _clock(url: str, *, keep_running: bool) -> BrokerClock:
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return BrokerClock(client, clock.redact(url), keep_running=keep_running)


def _redis_time(server_url: str) -> float:
    client = redis.Redis.from_url(server_url)
    try:
        seconds, micros = client.time()
        return seconds + micros / 1e6
    finally:
        client.close()


@pytest.mark.parametrize("keep_running", [False, True])
def test_reads_the_brokers_clock(redis_factory: RedisFactory, keep_running: bool) -> None:
    server = redis_factory()
    try:
        broker_clock = _clock(server.url, keep_running=keep_running)
        before = _redis_time(server.url)
        now = broker_clock()
        after = _redis_time(server.url)
        assert before - 0.05 <= now <= after + 0.05  # the midpoint estimate, one host: ms apart
    finally:
        server.stop()


def test_the_schedulers_clock_names_the_unreachable_broker_and_asks_again() -> None:
    url = _nobody()
    broker_clock = _clock(url, keep_running=False)
    for _ in range(2):  # no answer is remembered: every call asks again
        with pytest.raises(BrokerUnavailable) as caught:
            broker_clock()
        assert "read the clock" in caught.value.message
        assert "127.0.0.1" in caught.value.message and "s3cret" not in caught.value.message


def test_broker_now_is_the_schedulers_clock() -> None:
    broker = Broker(_nobody())
    try:
        with pytest.raises(BrokerUnavailable, match="read the clock"):
            broker.now()
    finally:
        broker.close()


def test_the_workers_clock_runs_on_local_time_when_the_broker_never_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker_clock = _clock(_nobody(), keep_running=True)
    with caplog.at_level(logging.WARNING, logger="scheduler.clock"):
        before = time.time()
        now = broker_clock()
        after = time.time()
    assert before <= now <= after  # offset 0 until Redis answers
    assert "cannot read the clock" in caplog.text and "s3cret" not in caplog.text


def test_the_workers_clock_keeps_running_through_an_outage(
    redis_factory: RedisFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a clock that measured once and then measures on every call
    server = redis_factory()
    worker_clock = _clock(server.url, keep_running=True)
    scheduler_clock = _clock(server.url, keep_running=False)
    worker_clock(), scheduler_clock()
    monkeypatch.setattr(clock, "CLOCK_REFRESH", 0.0)
    # When the broker goes away
    server.stop()
    # Then the worker's clock still tells the time (last offset), the scheduler's refuses
    assert abs(worker_clock() - time.time()) < 1.0
    with pytest.raises(BrokerUnavailable):
        scheduler_clock()
