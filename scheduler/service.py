"""`herd scheduler`: the reconcile loop as a long-running service beside Celery workers.

While it holds the single-active lock (scheduler/lock.py) it ticks the same `Scheduler` the
embedded CLI runs, with a CeleryDispatcher: every pass re-reads storage (one woken by outcomes
soon after a full pass, only the jobs: `_wait`), creates jobs and their plans, sends the datums
that have no result and are not in flight, and finishes jobs.
It remembers nothing storage does not also hold, so killing it at any moment and starting it
again (here or on another host) resumes the work; sent marks in Redis spare the resend.
SIGTERM/SIGINT end the current pass, free the lock, and exit.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time

from scheduler import metrics
from scheduler.broker import Broker
from scheduler.cron_ticks import CronTicker
from scheduler.version import herd_version
from scheduler.dispatch_celery import CeleryDispatcher
from scheduler.heartbeat import Heartbeat
from scheduler.lock import SchedulerLock
from scheduler.loop import IDLE_POLL, Progress, Scheduler
from scheduler.settings import SchedulerSettings
from storage.commits import now as utc_now
from storage.errors import BrokerUnavailable, HerdError, InvalidArgument
from storage.repos import Pfs
from storage.settings import StorageSettings

log = logging.getLogger(__name__)

ERROR_LOG_EVERY = 30.0  # seconds between two logs of the same outage


class SchedulerService:
    """Runs the reconcile loop while this process holds the scheduler lock."""

    def __init__(self, pfs: Pfs, settings: SchedulerSettings, storage_settings: StorageSettings | None = None) -> None:
        if not settings.broker:
            raise InvalidArgument("HERD_BROKER is not set: herd scheduler needs the broker's Redis URL")
        self.settings = settings
        self.broker = Broker(settings.broker, settings.queue)
        self.dispatcher = CeleryDispatcher(self.broker, settings)
        self.scheduler = Scheduler(
            pfs, self.dispatcher, parallelism=settings.parallelism, batch_seconds=settings.batch_seconds,
            resend_seconds=settings.resend_seconds, storage_settings=storage_settings,
        )
        self.scheduler.on_progress = _ProgressLog()
        self.crons = CronTicker(pfs)  # ticked while active only: the lock makes one ticker at a time
        self.dispatcher.pipeline_of = self.scheduler.pipeline_of  # names the pipeline of each task in Flower
        self.lock = SchedulerLock(self.broker, settings.lock_seconds)
        self.heartbeat = Heartbeat(self.broker, "scheduler", self.lock.token, self._heartbeat_record,
                                   settings.heartbeat_seconds)
        self._since = time.time()
        self._looked = 0.0  # when the last full pass started (monotonic)
        self.stopping = threading.Event()
        self._last_error: tuple[str, float] = ("", 0.0)

    def run(self) -> None:
        """Loop until `stop()`: tick while active, stand by otherwise."""
        log.info("scheduler started: broker %s, queue '%s'", self.broker.where, self.settings.queue)
        self.lock.start()
        self.heartbeat.start()
        try:
            again = False
            while not self.stopping.is_set():
                if not self.lock.active.wait(min(1.0, self.settings.reconcile_interval)):
                    again = False  # standby; the first pass starts as soon as the lock is taken
                    continue
                self._tick(again)
                again = self._wait(self._until_next_pass())
        finally:
            self.heartbeat.stop()
            self.lock.release()
            self.dispatcher.close()
            self.broker.close()
            log.info("scheduler stopped")

    def _heartbeat_record(self) -> dict[str, object]:
        """What `herd status` shows of this scheduler (scheduler/heartbeat.py adds the beat's time)."""
        return {
            "host": socket.gethostname(), "pid": os.getpid(), "since": self._since, "version": herd_version(),
            "role": "active" if self.lock.active.is_set() else "standby",
        }

    def stop(self, *_: object) -> None:
        """Finish the current pass and exit (the SIGTERM/SIGINT handler)."""
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def _tick(self, again: bool = False) -> None:
        """One pass; `again`: woken by outcomes, it may skip the listing (Scheduler.tick)."""
        try:
            self.scheduler.parallelism = self.dispatcher.capacity()
            t0 = time.monotonic()
            ticks, failures = self.crons.tick()  # before the pass, so it sees the new ticks
            for failed in failures:
                self._log_error(failed.error)
            full = not again or bool(ticks)
            self.scheduler.tick(again=not full)
            if full:
                self._looked = t0
            metrics.reconcile_pass(time.monotonic() - t0)
            log.debug("reconcile pass took %.3fs", time.monotonic() - t0)
        except HerdError as exc:  # storage or broker away: the next pass tries again
            self._log_error(exc)
        except Exception:  # noqa: BLE001 - a bad pass must not end the service; passes are idempotent
            log.exception("reconcile pass failed")

    def _until_next_pass(self) -> float:
        """The reconcile interval, or less when a cron tick falls due sooner (so none is late)."""
        due = self.crons.next_due
        if due is None:
            return self.settings.reconcile_interval
        return min(self.settings.reconcile_interval, max(0.0, (due - utc_now()).total_seconds()))

    def _wait(self, timeout: float) -> bool:
        """Sleep until a batch reports back (then pass again at once), `timeout`, or stop.

        True when the next pass may take the pipelines as the last full one found them, as the
        embedded loop's (docs/design.md, loop.py): woken by outcomes, with no job moved on, less
        than IDLE_POLL after that full pass. A worker wakes the scheduler with each outcome, so
        without this a busy cluster would list the pipelines and read every input branch once
        per batch (on S3, requests); a new commit is still seen within IDLE_POLL."""
        try:
            outcomes = self.dispatcher.wait(timeout)
        except BrokerUnavailable as exc:
            self._log_error(exc)
            self.stopping.wait(timeout)
            return False
        self.scheduler.note(outcomes)
        return bool(outcomes) and not self.scheduler.moved and time.monotonic() - self._looked < IDLE_POLL

    def _log_error(self, exc: HerdError) -> None:
        message, when = self._last_error
        if str(exc) != message or time.monotonic() - when > ERROR_LOG_EVERY:
            log.warning("%s", exc)
            self._last_error = (str(exc), time.monotonic())


class _ProgressLog:
    """Logs a job's progress when it changes (the service has no terminal to draw on)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def __call__(self, progress: Progress) -> None:
        if self._last.get(progress.job_id) != progress.done:
            self._last[progress.job_id] = progress.done
            log.info("pipeline %s job %s: %d/%d datums", progress.pipeline, progress.job_id[:12], progress.done,
                     progress.total, extra={"pipeline": progress.pipeline, "job": progress.job_id})


def run_scheduler(pfs: Pfs, settings: SchedulerSettings, storage_settings: StorageSettings | None = None) -> None:
    """Run the scheduler service in this process until SIGTERM/SIGINT."""
    service = SchedulerService(pfs, settings, storage_settings)
    if settings.metrics_port is not None:  # HERD_METRICS_PORT; the queue depth is read at each scrape
        metrics.serve(settings.metrics_port, queue_depth=service.dispatcher.queue_size)
        log.info("metrics on http://0.0.0.0:%d/metrics", settings.metrics_port)
    service.install_signal_handlers()
    service.run()
