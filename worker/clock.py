"""The worker's lease clock: the broker's clock (scheduler.clock.BrokerClock, one implementation
for every host), set to keep running on the last offset while the broker does not answer.

A lease written by one machine and read by another (the scheduler, a worker receiving a
duplicate) is only meaningful if both read the same clock. A broker outage must not stop
datums (leases are hints), so the worker's clock never raises; the scheduler's does.
"""

from __future__ import annotations

import redis

from scheduler.clock import BrokerClock as _BrokerClock
from scheduler.clock import redact

TIMEOUT_SECONDS = 2.0  # a clock read is on a datum's path: give up sooner than the queue does


class BrokerClock(_BrokerClock):
    """A callable returning Unix time on the broker's clock (local time until Redis answers)."""

    def __init__(self, url: str) -> None:
        client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS)
        super().__init__(client, redact(url), keep_running=True)
