"""Lease time as the broker's Redis tells it, so every host judges leases by one clock.

A lease written by one machine and read by another (the scheduler, a worker receiving a
duplicate) is only meaningful if both read the same clock: hosts' clocks drift. Redis `TIME`
is that clock; its offset from the local clock is measured now and then, and local time plus
the offset is used in between (no round trip per lease).
"""

from __future__ import annotations

import logging
import time

import redis

log = logging.getLogger(__name__)

REFRESH_SECONDS = 60.0
TIMEOUT_SECONDS = 2.0


class BrokerClock:
    """A callable returning Unix time on the broker's clock (local time until Redis answers)."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS)
        self._offset = 0.0
        self._measured = float("-inf")

    def __call__(self) -> float:
        if time.monotonic() - self._measured > REFRESH_SECONDS:
            self._measure()
        return time.time() + self._offset

    def _measure(self) -> None:
        try:
            before = time.time()
            seconds, micros = self._client.time()
            after = time.time()
        except redis.RedisError as exc:
            # Keep the last offset: a broker outage must not stop datums (leases are hints).
            log.warning("cannot read the broker's clock, using the last offset (%.3fs): %s", self._offset, exc)
            self._measured = time.monotonic() - REFRESH_SECONDS + 5.0  # retry in 5 s
            return
        self._offset = seconds + micros / 1e6 - (before + after) / 2
        self._measured = time.monotonic()
