"""`herd run-cron`: tick cron inputs on the embedded default (the scheduler service ticks them
itself while it is active).

A Pachyderm cluster ticks its cron pipelines for as long as it runs; herd's embedded default has
no process that lives on, so this command is that process: it commits each tick when it falls
due and runs the jobs it triggers, until Ctrl-C or SIGTERM. `--once` makes the ticks due now
(a tick missed while nothing ran is made once, not once per missed period) and exits, for cron(8)
or a CI schedule. Every command that runs jobs (`@settles`) also makes the ticks due first.
"""

from __future__ import annotations

import time

import click

from scheduler.cli.context import CliContext, pass_cli, storage_only
from scheduler.cli.group import cli

IDLE_POLL = 1.0  # seconds between two looks when no running pipeline has a cron input
MAX_SLEEP = 5.0  # look again at least this often: pipelines may be created, updated, started


@storage_only
@cli.command("run-cron")
@click.option("--once", is_flag=True, help="Make the ticks due now, run their jobs, and exit.")
@pass_cli
def run_cron(cli: CliContext, once: bool) -> int:
    """Tick cron inputs: commit each tick as it falls due and run the jobs it triggers.

    Runs until Ctrl-C or SIGTERM; prints one line per tick (cron repo, commit, tick time).
    Ticks of several processes never double up: each scheduled time is committed once.
    Exits 1 when a cron input could not tick (with --once, or when stopped)."""
    from scheduler.cli.embedded import settle
    from scheduler.cron import tick_name
    from scheduler.cli.embedded import sigterm_interrupts
    from scheduler.cron_ticks import CronTicker
    from storage.commits import now

    ticker = CronTicker(cli.pfs)
    failed = False
    told_idle = False
    with sigterm_interrupts():  # SIGTERM ends the loop as Ctrl-C does
        try:
            while True:
                ticks, errors = ticker.tick()
                for tick in ticks:
                    click.echo(f"{tick.repo}@{tick.commit} {tick_name(tick.time)} "
                               f"(pipeline {tick.pipeline}, cron input {tick.input})")
                for error in errors:
                    failed = True
                    click.echo(f"error: pipeline '{error.pipeline}' cron input '{error.input}': "
                               f"{' '.join(error.error.message.split())}", err=True)
                # The jobs the ticks triggered (no-op when a scheduler service runs them).
                settle(cli.pfs, cli.scheduler_settings, worker_settings=cli.worker_settings,
                       storage_settings=cli.settings, crons=False)
                if once:
                    break
                if ticker.next_due is None and not told_idle:
                    click.echo("no running pipeline has a cron input; waiting (Ctrl-C to stop)", err=True)
                    told_idle = True
                wait = IDLE_POLL if ticker.next_due is None else (ticker.next_due - now()).total_seconds()
                time.sleep(min(MAX_SLEEP, max(0.0, wait)))
        except KeyboardInterrupt:
            if once:
                raise
    return 1 if failed else 0

