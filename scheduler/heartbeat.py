"""Heartbeats of the distributed services in the broker's Redis, for `herd status` and `herd version`.

Every `herd scheduler` and every `herd worker` node (its main process, not each pool process)
writes a small record every HERD_HEARTBEAT_SECONDS: who it is (host, pid, version, ...) and
when it beat, on the broker's clock (scheduler/clock.py), so readers on other hosts judge its
age on one clock. A process that misses MISSES beats is gone (scheduler/cluster.py decides);
its record stays KEEP_BEATS beats longer so `herd status` can name it, then Redis drops it. A
clean stop removes the record at once: that process left, it is not gone.

Heartbeats are hints for people: nothing schedules by them, and a broker outage only delays them.

Wire format (worker/heartbeat.py writes the worker side itself: the worker may not import this
module): `herd:<queue>:heartbeat:<kind>:<name>` holds a JSON record with `heartbeat` (broker
clock) and `window` (seconds); `herd:<queue>:done:<name>` counts a worker's datums that ended.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from scheduler.broker import Broker
from storage.errors import BrokerUnavailable

log = logging.getLogger(__name__)

MISSES = 3  # beats missed before a process counts as gone
KEEP_BEATS = 300  # beats a record outlives its last beat (a gone process is named this long)


def window(every: float) -> float:
    """Seconds without a beat after which a process beating every `every` seconds is gone."""
    return every * MISSES


def keep_seconds(every: float) -> float:
    return max(60.0, every * KEEP_BEATS)


class Heartbeat:
    """A daemon thread writing `record()` plus the beat's time every `every` seconds."""

    def __init__(
        self, broker: Broker, kind: str, name: str, record: Callable[[], dict[str, object]], every: float,
    ) -> None:
        self.broker = broker
        self.kind = kind
        self.name = name
        self.record = record
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._told: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"herd-heartbeat-{self.kind}", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        """One beat now; BrokerUnavailable when Redis does not answer."""
        body = {**self.record(), "heartbeat": self.broker.now(), "window": window(self.every)}
        self.broker.beat(self.kind, self.name, body, keep_seconds(self.every))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
                self._told = None
            except BrokerUnavailable as exc:
                if str(exc) != self._told:  # once per outage, not once per beat
                    log.warning("heartbeat not written: %s", exc)
                    self._told = str(exc)
            except Exception:  # noqa: BLE001 - a heartbeat must never end the service it reports on
                log.exception("heartbeat failed")
            self._stop.wait(self.every)

    def stop(self) -> None:
        """Stop beating and remove the record (a clean stop is not a death)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.broker.leave(self.kind, self.name)
        except BrokerUnavailable as exc:
            log.warning("%s (the heartbeat record expires by itself)", exc)
