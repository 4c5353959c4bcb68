"""The distributed services: `herd scheduler` (the reconcile loop) and `herd worker` (Celery).

Both need HERD_BROKER. The worker is Celery's own worker program run on the app `worker.app`,
by exec: the scheduler package never imports worker code, it names it.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from scheduler.cli.context import CliContext, pass_cli

commands = click.Group("services")

LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)


def register(group: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    for command in commands.commands.values():
        group.add_command(command)


def _broker_settings():
    from scheduler.settings import SchedulerSettings
    from storage.errors import InvalidArgument

    settings = SchedulerSettings()
    if not settings.broker:
        raise InvalidArgument("HERD_BROKER is not set: the scheduler and workers need the broker's Redis URL "
                              "(e.g. redis://localhost:6379/0)")
    return settings


@commands.command("scheduler")
@click.option("--log-level", type=LOG_LEVELS, default="INFO", show_default=True, help="Log verbosity (stderr).")
@pass_cli
def scheduler(cli: CliContext, log_level: str) -> None:
    """Run the scheduler service: turn commits into jobs and send their datums to workers.

    One scheduler is active at a time (a lock in Redis); a second one waits and takes over
    when the first stops. Stop it with SIGTERM or Ctrl-C.
    """
    from scheduler.service import run_scheduler

    settings = _broker_settings()
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_scheduler(cli.pfs, settings)


@commands.command("worker")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=None,
              help="Batches run at once (worker processes). Default: HERD_CONCURRENCY, else 1.")
@click.option("--log-level", type=LOG_LEVELS, default="INFO", show_default=True, help="Log verbosity (stderr).")
def worker(concurrency: int | None, log_level: str) -> None:
    """Run a worker: take datum batches from the broker and run them (user code in Docker when an engine answers)."""
    _broker_settings()
    argv = [
        sys.executable, "-m", "celery", "-A", "worker.app", "worker",
        f"--loglevel={log_level.upper()}", "--without-mingle", "--without-gossip",
        # Unique per process, so counting workers (celery inspect) sees each one.
        "-n", f"herd-{os.getpid()}@%h",
    ]
    if concurrency is not None:
        argv.append(f"--concurrency={concurrency}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
