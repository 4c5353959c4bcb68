"""The embedded default: with no broker configured, a command that changed data or pipelines
runs the scheduler in its own process until the jobs it caused are done."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from scheduler.cli import progress
from scheduler.cli.wiring import embedded_dispatcher
from scheduler.cron_ticks import CronTicker
from scheduler.loop import Progress, Scheduler
from scheduler.settings import SchedulerSettings
from storage.repos import Pfs

if TYPE_CHECKING:
    from rich.progress import TaskID


def settle(
    pfs: Pfs, settings: SchedulerSettings, worker_settings: Any = None, storage_settings: Any = None,
    crons: bool = True,
) -> None:
    """Run every job owed until none is left (no-op when a scheduler service owns the work).

    `settings` and `worker_settings` (a worker.settings.WorkerSettings) are the caller's, loaded
    once; without worker settings the worker loads its own from the environment. `crons=False`:
    the caller (`herd run-cron`) makes and reports the cron ticks itself."""
    if settings.broker:
        return
    # The crons due now first (a tick missed while nothing ran is made once, here): their jobs
    # run below. A cron that cannot tick is reported by `herd run-cron`, not by every command.
    if crons:
        CronTicker(pfs).tick()
    dispatcher = embedded_dispatcher(pfs.objects, settings.parallelism, worker_settings)
    scheduler = Scheduler(
        pfs, dispatcher, parallelism=settings.parallelism, batch_seconds=settings.batch_seconds,
        resend_seconds=settings.resend_seconds, storage_settings=storage_settings,
    )
    aborted = True
    try:
        with _progress_bar(scheduler), sigterm_interrupts():
            scheduler.run_until_idle()
        aborted = False
    finally:
        # On Ctrl-C or SIGTERM, user code is killed at once rather than awaited (it runs again
        # next time); the sandboxes die with this process anyway if it is SIGKILLed.
        dispatcher.close(abort=aborted)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While jobs run here, SIGTERM acts as Ctrl-C does: stop user code, clean up, exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _progress_bar(scheduler: Scheduler) -> AbstractContextManager[object]:
    """A rich progress bar per job, only for a person at a terminal."""
    if not progress.on_terminal():
        return nullcontext()
    bar = progress.bar("items", transient=False)  # the jobs' outcome stays on screen
    tasks: dict[str, TaskID] = {}

    def show(p: Progress) -> None:
        if p.job_id not in tasks:
            tasks[p.job_id] = bar.add_task(f"{p.pipeline} job {p.job_id[:8]}", total=p.total)
        bar.update(tasks[p.job_id], completed=p.done, total=p.total)

    scheduler.on_progress = show
    return bar
