"""The broker's clock, the one clock leases and sent marks are judged by (reliability rule 7).

A lease written by one machine and read by another (the scheduler, a worker receiving a
duplicate) is only meaningful if both read the same clock: hosts' clocks drift. Redis `TIME`
is that clock. Its offset from the local clock is measured now and then, and local time plus
the offset is used in between (no round trip per lease). The scheduler (scheduler/broker.py)
and the worker (worker/clock.py) use this one implementation; they differ only in what a
failed measurement does (`keep_running`) and how their Redis client is built.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit, urlunsplit

import redis

from storage.errors import BrokerUnavailable

log = logging.getLogger(__name__)

CLOCK_REFRESH = 60.0  # seconds between two measurements of the offset
CLOCK_RETRY = 5.0  # seconds before a clock that keeps running asks an unanswering broker again


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def unreachable(where: str, action: str, exc: Exception) -> BrokerUnavailable:
    """The one-line error for a broker that did not answer, naming it (password redacted)."""
    return BrokerUnavailable(f"the broker at {where} is unreachable ({action}): {exc}")


class BrokerClock:
    """A callable returning Unix time on the broker's clock.

    When a due measurement fails, `keep_running` decides, once per caller:
    - False (the scheduler): raise BrokerUnavailable and measure again on the next call. The
      scheduler can neither send nor judge anything without the broker; its caller reports it.
    - True (the worker): log, keep the last offset (local time before the first answer) and
      ask again after CLOCK_RETRY seconds. A broker outage must not stop running datums:
      leases are hints, storage is the truth.
    """

    def __init__(self, client: redis.Redis, where: str, *, keep_running: bool) -> None:
        self._client = client
        self._where = where
        self._keep_running = keep_running
        self._offset = 0.0
        self._measured = float("-inf")  # time.monotonic() of the last measurement

    def __call__(self) -> float:
        if time.monotonic() - self._measured > CLOCK_REFRESH:
            self._measure()
        return time.time() + self._offset

    def _measure(self) -> None:
        try:
            before = time.time()
            seconds, micros = self._client.time()
            after = time.time()
        except redis.RedisError as exc:
            if not self._keep_running:
                raise unreachable(self._where, "read the clock", exc) from None
            log.warning("cannot read the clock of the broker at %s, using the last offset (%.3fs): %s",
                        self._where, self._offset, exc)
            self._measured = time.monotonic() - CLOCK_REFRESH + CLOCK_RETRY
            return
        self._offset = seconds + micros / 1e6 - (before + after) / 2
        self._measured = time.monotonic()
