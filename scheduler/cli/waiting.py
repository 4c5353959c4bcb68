"""What a command that waits on jobs says while it waits (flush-commit, inspect-job --block).

In distributed mode (HERD_BROKER set) jobs run only while a `herd scheduler` holds the lock in
the broker's Redis; without one a wait would last forever in silence. The watch reads who holds
the lock (scheduler/lock.py `active_scheduler`, read-only) at most once a second and says once,
on stderr, that no scheduler is running when none has held it for GRACE_SECONDS; it keeps
waiting, since a scheduler started later picks the jobs up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

NO_SCHEDULER = "no scheduler is running: start one with herd scheduler"
# Longer than a standby's takeover gap (lock ttl/3 after the key expires), so a scheduler
# handing over to its standby is not reported as none.
GRACE_SECONDS = 4.0
PROBE_EVERY = 1.0


class SchedulerWatch:
    """Pure: fed who holds the lock (None: nobody) and when; says when the warning is due, once."""

    def __init__(self, grace: float = GRACE_SECONDS) -> None:
        self.grace = grace
        self._none_since: float | None = None
        self.warned = False

    def observe(self, holder: str | None, now: float) -> bool:
        """True exactly once: the first time nobody has held the lock for `grace` seconds."""
        if holder is not None:
            self._none_since = None
            return False
        if self._none_since is None:
            self._none_since = now
        if not self.warned and now - self._none_since >= self.grace:
            self.warned = True
            return True
        return False


def scheduler_watch(
    probe: Callable[[], str | None], say: Callable[[str], None], grace: float = GRACE_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[..., None]:
    """An `on_wait` callback: probes at most every PROBE_EVERY seconds, says NO_SCHEDULER once.

    A broker that does not answer is said once too, as itself: an outage is not "no scheduler".
    """
    from storage.errors import BrokerUnavailable

    watch = SchedulerWatch(grace)
    last = [float("-inf")]
    told_outage = [False]

    def on_wait(*_: Any) -> None:
        now = clock()
        if now - last[0] < PROBE_EVERY:
            return
        last[0] = now
        try:
            holder = probe()
        except BrokerUnavailable as exc:
            if not told_outage[0]:
                told_outage[0] = True
                say(f"warning: {exc}")
            return
        if watch.observe(holder, now):
            say(NO_SCHEDULER)

    return on_wait


def scheduler_probe(broker: Any) -> str | None:
    """Who runs jobs now: the lock's holder, else a scheduler whose heartbeat is younger than
    its window (a standby about to take over); None when neither. `broker`: scheduler.broker.Broker.

    BrokerUnavailable when Redis does not answer: that is not "none"."""
    from scheduler.cluster import alive
    from scheduler.lock import active_scheduler

    holder = active_scheduler(broker)
    if holder is not None:
        return holder
    now = broker.now()
    live = [r for r in broker.heartbeats("scheduler") if alive(r, now)]
    return str(live[0].get("name", "?")) if live else None


def warn_without_scheduler(probe: Callable[[], str | None], say: Callable[[str], None]) -> None:
    """Say NO_SCHEDULER once now when no scheduler runs (create-pipeline: its jobs would wait forever)."""
    from storage.errors import BrokerUnavailable

    try:
        holder = probe()
    except BrokerUnavailable as exc:
        say(f"warning: {exc}")
        return
    if holder is None:
        say(NO_SCHEDULER)


def chain(*callbacks: Callable[..., None] | None) -> Callable[..., None] | None:
    """One callback calling each given one in turn (None when none is given)."""
    present = [c for c in callbacks if c is not None]
    if not present:
        return None

    def call(*args: Any) -> None:
        for callback in present:
            callback(*args)

    return call
