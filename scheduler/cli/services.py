"""The distributed services: `herd scheduler` (the reconcile loop) and `herd worker` (Celery).

Both need HERD_BROKER. Both run on the settings the CLI loaded once before the command. The
worker is Celery's own worker program run in this process on the app `worker.app:make_app`
builds from those settings (its pool processes are forked from this one), which the
composition root (scheduler/cli/wiring.py) hands over.
"""

from __future__ import annotations

import os
from typing import Any

import click

from scheduler.cli.context import CliContext, pass_cli, storage_only
from scheduler.cli.group import cli


LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)



def _need_broker(settings: Any) -> None:
    """InvalidArgument unless HERD_BROKER is set (in BrokerSettings, which both services' settings share)."""
    from storage.errors import InvalidArgument

    if not settings.broker:
        raise InvalidArgument("HERD_BROKER is not set: the scheduler and workers need the broker's Redis URL "
                              "(e.g. redis://localhost:6379/0)")


@storage_only
@cli.command("scheduler")
@click.option("--log-level", type=LOG_LEVELS, default="INFO", show_default=True, help="Log verbosity (stderr).")
@pass_cli
def scheduler(cli: CliContext, log_level: str) -> None:
    """Run the scheduler service: turn commits into jobs and send their datums to workers.

    One scheduler is active at a time (a lock in Redis); a second one waits and takes over
    when the first stops. Stop it with SIGTERM or Ctrl-C.
    """
    from scheduler.cli.wiring import run_scheduler
    from scheduler.logging_setup import configure_logging

    settings = cli.scheduler_settings
    _need_broker(settings)
    configure_logging("scheduler", settings.log_format, log_level)  # HERD_LOG_FORMAT: human or json
    run_scheduler(cli.pfs, settings, cli.settings)  # storage settings: egress opens s3:// URLs with them


@storage_only
@cli.command("worker")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=None,
              help="Batches run at once (worker processes). Default: HERD_CONCURRENCY, else 1.")
@click.option("--log-level", type=LOG_LEVELS, default="INFO", show_default=True, help="Log verbosity (stderr).")
@pass_cli
def worker(cli: CliContext, concurrency: int | None, log_level: str) -> int:
    """Run a worker: take datum batches from the broker and run them (user code in Docker when an engine answers)."""
    settings = cli.worker_settings
    _need_broker(settings)
    from scheduler.cli.wiring import worker_app

    app = worker_app(settings, cli.settings)
    argv = [
        "worker", f"--loglevel={log_level.upper()}", "--without-mingle", "--without-gossip",
        # Unique per process, so counting workers (celery inspect) sees each one.
        "-n", f"herd-{os.getpid()}@%h",
    ]
    if concurrency is not None:
        argv.append(f"--concurrency={concurrency}")
    return app.start(argv) or 0
