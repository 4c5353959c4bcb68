"""Job, datum and log verbs, and flush-commit (pachctl 1.x names and columns)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from scheduler import render, render_pps
from scheduler.cli import progress
from scheduler.cli.waiting import chain, scheduler_watch
from scheduler.cli.context import (
    CliContext, echo_raw, echo_raw_lines, echo_table, parse_target, pass_cli, raw_option, settles, target_argument,
)
from scheduler.cli.group import cli




@cli.command("list-job")
@click.option("-p", "--pipeline", default=None, help="Only this pipeline's jobs.")
@raw_option
@pass_cli
def list_job(cli: CliContext, pipeline: str | None, raw: bool) -> None:
    """List jobs, newest first: ID PIPELINE STARTED DURATION RESTART PROGRESS DL UL STATE."""
    jobs = cli.jobs.list(pipeline)
    if raw:
        echo_raw_lines(render_pps.job_raw(info, status) for info, status in jobs)
        return
    now = cli.now()
    echo_table(render_pps.JOB_HEADERS, (render_pps.job_row(info, status, now) for info, status in jobs))


@cli.command("inspect-job")
@click.argument("job")
@click.option("-b", "--block", is_flag=True, help="Wait until the job has ended, however it ends.")
@raw_option
@pass_cli
def inspect_job(cli: CliContext, job: str, block: bool, raw: bool) -> None:
    """Show a job's state, counters, inputs and output commit."""
    if block:
        with _watchdog() as watch:
            info, status = cli.jobs.wait_job(job, on_wait=watch)
    else:
        info, status = cli.jobs.inspect(job)
    if raw:
        echo_raw(render_pps.job_raw(info, status))
        return
    click.echo(render.fields(render_pps.job_fields(info, status, cli.now())))


@settles
@cli.command("stop-job")
@click.argument("job")
@pass_cli
def stop_job(cli: CliContext, job: str) -> None:
    """Stop a running job: it ends JOB_KILLED and the pipeline moves on."""
    cli.pipelines.stop_job(job)


@cli.command("list-datum")
@click.argument("job")
@raw_option
@pass_cli
def list_datum(cli: CliContext, job: str, raw: bool) -> None:
    """List a job's datums, failed first: ID STATUS TIME."""
    job_id, rows = cli.jobs.datums(job)
    if raw:
        echo_raw_lines(render_pps.datum_raw(job_id, d, r) for d, r in rows)
        return
    echo_table(render_pps.DATUM_HEADERS, (render_pps.datum_row(d, r) for d, r in rows))


@cli.command("inspect-datum")
@click.argument("job")
@click.argument("datum")
@raw_option
@pass_cli
def inspect_datum(cli: CliContext, job: str, datum: str, raw: bool) -> None:
    """Show one datum: state, timings, and the input files it saw."""
    job_id, planned, result = cli.jobs.datum(job, datum)
    if raw:
        echo_raw(render_pps.datum_raw(job_id, planned, result))
        return
    click.echo(render.fields(render_pps.datum_fields(job_id, planned, result)))


@settles
@cli.command("restart-datum")
@click.argument("job")
@click.argument("datums", nargs=-1, required=True)
@pass_cli
def restart_datum(cli: CliContext, job: str, datums: tuple[str, ...]) -> None:
    """Restart datums that are running (by id or input path); finished datums are not rerun."""
    for item in datums:
        for name in item.split(","):
            cli.pipelines.restart_datum(job, name)


@cli.command("get-logs")
@click.option("-p", "--pipeline", default=None, help="Logs of this pipeline's jobs.")
@click.option("--job", default=None, help="Logs of this job.")
@click.option("--datum", default=None, help="Logs of this datum (needs --job).")
@raw_option
@pass_cli
def get_logs(cli: CliContext, pipeline: str | None, job: str | None, datum: str | None, raw: bool) -> None:
    """Print what user code wrote to stdout and stderr, a line per message."""
    for entry in cli.jobs.logs(pipeline, job, datum):
        for stream in ("stdout", "stderr"):
            for line in entry.get(stream, "").splitlines():
                if raw:
                    click.echo(json.dumps({
                        "pipelineName": entry["pipeline"], "jobId": entry["job_id"], "workerId": entry["worker"],
                        "datumId": entry["datum_id"], "data": entry.get("data", []), "user": True,
                        "ts": entry.get("ts"), "message": line, "stream": stream,
                    }))
                else:
                    click.echo(line)
        if entry.get("reason") and not raw:
            click.echo(f"[herd] datum {entry['datum_id'][:12]} attempt {entry['attempt']}: {entry['reason']}", err=True)


@cli.command("flush-commit")
@target_argument("REPO REF")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
@raw_option
@pass_cli
def flush_commit(cli: CliContext, target: tuple[str, ...], timeout: float | None, raw: bool) -> None:
    """Wait until every job downstream of a commit has ended; print each with its output commit and state.

    Failed, killed and unrunnable jobs end the wait too and are printed with their state; the
    exit status is 0 whatever the jobs' states (as Pachyderm 1.9's flush returns failed jobs).
    """
    repo, ref = parse_target(target, "REPO REF")
    with _wait_bar() as bar, _watchdog() as watch:
        rows = cli.jobs.flush_jobs(repo, ref, timeout=timeout, on_wait=chain(bar, watch))
    if raw:
        echo_raw_lines(render_pps.flush_raw(r.job, r.status, r.output) for r in rows)
        return
    now = cli.now()
    echo_table(render_pps.FLUSH_HEADERS, (render_pps.flush_row(r.job, r.status, r.output, now) for r in rows))


@contextmanager
def _watchdog() -> Iterator[Callable[..., None] | None]:
    """In distributed mode, an `on_wait` that says once when no scheduler is running."""
    from scheduler.settings import SchedulerSettings
    from storage.setting_types import load_settings

    settings = load_settings(SchedulerSettings)
    if not settings.broker:
        yield None  # embedded: this process runs the jobs itself
        return
    from scheduler.cli.wiring import open_broker

    # First: without herd[cluster], this names the missing package before scheduler.lock needs redis.
    broker = open_broker(settings.broker, settings.queue)
    from scheduler.lock import active_scheduler

    try:
        yield scheduler_watch(lambda: active_scheduler(broker), lambda message: click.echo(message, err=True))
    finally:
        broker.close()


@contextmanager
def _wait_bar() -> Iterator[Callable[[str, int, int], None] | None]:
    """A bar of downstream pipelines done, for a person at a terminal; nothing in pipes."""
    if not progress.on_terminal():
        yield None
        return
    with progress.bar("items") as bar:
        task = bar.add_task("flush-commit", total=None)

        def update(pipeline: str, done: int, total: int) -> None:
            bar.update(task, description=f"waiting for {pipeline}", completed=done, total=total)

        yield update
