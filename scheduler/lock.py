"""One active `herd scheduler` at a time: a lease lock in the broker's Redis.

Taken with `SET key token NX PX ttl`, kept by a token-checked `PEXPIRE` every ttl/3, given up
with a token-checked `DEL`. Redis expires the key on its own clock, so no two hosts' clocks
are compared. Why Redis and not a lease in storage: a scheduler without the broker can send
nothing anyway, and the lock is for efficiency only. Every scheduler write is create-only or
compare-and-set in storage, so two schedulers active at once (a Redis wiped under the holder,
a paused holder) cost duplicate messages, never wrong data.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from scheduler.broker import Broker, text
from storage.errors import BrokerUnavailable

log = logging.getLogger(__name__)

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class SchedulerLock:
    """The single-active lease; a keeper thread takes or renews it every ttl/3."""

    def __init__(self, broker: Broker, ttl: float) -> None:
        self.broker = broker
        self.key = broker.key("scheduler")
        self.ttl_ms = max(1000, int(ttl * 1000))
        self.token = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.active = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._told_holder: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._keep, name="herd-scheduler-lock", daemon=True)
        self._thread.start()

    def hold(self) -> bool:
        """Take the lock or renew it; True while this scheduler holds it."""
        client = self.broker.client
        with self.broker.errors("take the scheduler lock"):
            if self.active.is_set() and client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms):
                return True
            if self.active.is_set():
                log.warning("lost the scheduler lock %s; standing by", self.key)
                self.active.clear()
            if client.set(self.key, self.token, nx=True, px=self.ttl_ms):
                log.info("took the scheduler lock %s as %s: active", self.key, self.token)
                self.active.set()
                return True
            holder = client.get(self.key)
        self._tell_holder(text(holder) if holder else "?")
        return False

    def _tell_holder(self, holder: str) -> None:
        if holder != self._told_holder:
            log.info("scheduler %s is active; waiting for its lock %s to be free", holder, self.key)
            self._told_holder = holder

    def _keep(self) -> None:
        while not self._stop.is_set():
            try:
                self.hold()
            except BrokerUnavailable as exc:
                # Keep acting while the lease may still be ours: a broker outage does not
                # make another scheduler active (it cannot take the lock either).
                log.warning("%s", exc)
            self._stop.wait(self.ttl_ms / 3000)

    def release(self) -> None:
        """Stop renewing and free the lock now, so a standby takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.active.is_set():
            self.active.clear()
            try:
                with self.broker.errors("release the scheduler lock"):
                    self.broker.client.eval(_RELEASE, 1, self.key, self.token)
            except BrokerUnavailable as exc:
                log.warning("%s (the lock expires by itself)", exc)


def active_scheduler(broker: Broker) -> str | None:
    """The token of the scheduler holding the lock now (`host-pid-nonce`), None when none does.

    Read-only (a plain GET), for commands that wait on jobs and want to say when no scheduler
    would ever run them. BrokerUnavailable when Redis does not answer: that is not "none".
    """
    with broker.errors("read the scheduler lock"):
        holder = broker.client.get(broker.key("scheduler"))
    if isinstance(holder, str):  # only with decode_responses, which Broker does not set
        return holder
    return holder.decode(errors="replace") if holder else None
