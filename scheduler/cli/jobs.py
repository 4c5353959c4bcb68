"""Job, datum and log verbs, and flush-commit (pachctl 1.x names and columns)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from scheduler import render
from scheduler.cli import progress
from scheduler.cli.waiting import chain, scheduler_watch
from scheduler.cli.context import (
    CliContext, echo_raw, echo_raw_lines, echo_table, parse_target, pass_cli, raw_option, settles, target_argument,
)
from scheduler.cli.lazy import lazy_module
from scheduler.cli.group import INTERRUPTED_EXIT, cli
from scheduler.logs import HERD_STREAM, LogLine
from scheduler.pachctl_json import PACHCTL, RawStyle, shaped

if TYPE_CHECKING:
    from scheduler import render_pps
else:  # job records and pydantic models: only the verbs that show them pay the import
    render_pps = lazy_module("scheduler.render_pps")




def parse_job_state(value: str | None) -> str | None:
    """`--state`: a job state as pachctl writes it (JOB_FAILURE) or short (failure), any case;
    InvalidArgument naming the allowed states otherwise."""
    from scheduler.job_records import JobState
    from storage.errors import InvalidArgument

    if value is None:
        return None
    wanted = value.strip().upper()
    for state in JobState:
        if wanted in (state.value, state.value.removeprefix("JOB_")):
            return state.value
    allowed = ", ".join(s.value.removeprefix("JOB_").lower() for s in JobState)
    raise InvalidArgument(f"invalid --state '{value}': expected one of {allowed} (or JOB_<STATE>)")


@cli.command("list-job")
@click.option("-p", "--pipeline", default=None, help="Only this pipeline's jobs.")
@click.option("--state", default=None, help="Only jobs in this state: starting, running, success, failure, killed, egressing, unrunnable.")
@raw_option
@pass_cli
def list_job(cli: CliContext, pipeline: str | None, state: str | None, raw: RawStyle | None) -> None:
    """List jobs, newest first: ID PIPELINE STARTED DURATION RESTART PROGRESS DL UL STATE."""
    wanted = parse_job_state(state)  # before any read: a bad value is refused at once
    jobs = [(info, status) for info, status in _jobs_of(cli, pipeline) if wanted in (None, status.state.value)]
    if raw:
        echo_raw_lines((render_pps.job_raw(info, status) for info, status in jobs), raw)
        return
    now = cli.now()
    echo_table(render_pps.JOB_HEADERS, (render_pps.job_row(info, status, now) for info, status in jobs))


def _jobs_of(cli: CliContext, pipeline: str | None) -> list[tuple[Any, Any]]:
    """Every job, or one pipeline's: none for a pipeline that does not exist (or was deleted,
    with its jobs), as pachctl 1.4 prints an empty list rather than an error."""
    from storage.errors import PipelineNotFound

    try:
        return cli.jobs.list(pipeline)
    except PipelineNotFound:
        return []


@cli.command("inspect-job")
@click.argument("job")
@click.option("-b", "--block", is_flag=True, help="Wait until the job has ended, however it ends.")
@raw_option
@pass_cli
def inspect_job(cli: CliContext, job: str, block: bool, raw: RawStyle | None) -> None:
    """Show a job's state, counters, inputs and output commit."""
    if block:
        with _watchdog(cli) as watch:
            info, status = cli.jobs.wait_job(job, on_wait=watch)
    else:
        info, status = cli.jobs.inspect(job)
    digest = cli.jobs.image_digest(info.id)  # the image id its datums ran (worker/image_digest.py)
    if raw:
        echo_raw(render_pps.job_raw(info, status, image_digest=digest or ""), raw)
        return
    click.echo(render.fields(render_pps.job_fields(info, status, cli.now(), image_digest=digest)))


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
def list_datum(cli: CliContext, job: str, raw: RawStyle | None) -> None:
    """List a job's datums, failed first: ID STATUS TIME."""
    job_id, rows = cli.jobs.datums(job)
    if raw:
        echo_raw_lines((render_pps.datum_raw(job_id, d, r) for d, r in rows), raw)
        return
    echo_table(render_pps.DATUM_HEADERS, (render_pps.datum_row(d, r) for d, r in rows))


@cli.command("inspect-datum")
@click.argument("job")
@click.argument("datum")
@raw_option
@pass_cli
def inspect_datum(cli: CliContext, job: str, datum: str, raw: RawStyle | None) -> None:
    """Show one datum: state, timings, and the input files it saw."""
    job_id, planned, result = cli.jobs.datum(job, datum)
    if raw:
        echo_raw(render_pps.datum_raw(job_id, planned, result), raw)
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
@click.option("--datum", default=None, help="Logs of this datum (an id prefix or an input path; needs --job).")
@click.option("--inputs", default=None, metavar="PATH[,PATH]", help="Only datums whose input files match these.")
@click.option("--tail", "tail", type=click.IntRange(min=0), default=None, metavar="N", help="Only the last N lines.")
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing new lines: until the job ends with --job, else until Ctrl-C.")
@raw_option
@pass_cli
def get_logs(
    cli: CliContext, pipeline: str | None, job: str | None, datum: str | None, inputs: str | None,
    tail: int | None, follow: bool, raw: RawStyle | None,
) -> None:
    """Print what user code wrote to stdout and stderr, a line per message, as it runs.

    A retried datum's lines are marked as a new attempt; herd's own notes (why an attempt
    failed, what was cut) go to stderr, or are lines of stream "herd" with --raw/--json."""
    from scheduler.logs import parse_inputs

    scope = cli.jobs.log_scope(pipeline, job, datum, parse_inputs(inputs))
    attempts: dict[tuple[str, str], int] = {}
    try:
        for line in cli.jobs.follow_logs(scope, tail=tail, follow=follow):
            _echo_log(line, raw, attempts)
    except KeyboardInterrupt:
        raise click.exceptions.Exit(INTERRUPTED_EXIT) from None


def _echo_log(line: LogLine, raw: RawStyle | None, attempts: dict[tuple[str, str], int]) -> None:
    """One line: its message (herd's notes on stderr), or its JSON with --raw. A datum's lines
    of a later attempt than the last shown are headed by a note naming the attempt."""
    if raw:
        record = line.log_message() if raw == PACHCTL else line.raw()
        click.echo(json.dumps(shaped(record, raw), ensure_ascii=False), nl=True)
        return
    key = (line.job, line.datum)
    shown = attempts.get(key)
    attempts[key] = line.attempt
    if line.attempt > (shown if shown is not None else 1):
        click.echo(f"[herd] datum {line.datum[:12]}: attempt {line.attempt}", err=True)
    if line.stream == HERD_STREAM:
        click.echo(f"[herd] {line.message}", err=True)
    else:
        click.echo(line.message)


@cli.command("flush-commit")
@target_argument("REPO@COMMIT... | REPO COMMIT")
@click.option("-r", "--repos", "repos", multiple=True, metavar="REPO",
              help="Only show the output commits of these repos (repeatable).")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
@raw_option
@pass_cli
def flush_commit(cli: CliContext, target: tuple[str, ...], repos: tuple[str, ...], timeout: float | None,
                 raw: RawStyle | None) -> None:
    """Wait until every job downstream of the commits has ended; print each with its output commit and state.

    Commits are `repo@commit` (or `repo/commit`) words, any number, or one `REPO COMMIT` pair.
    Failed, killed and unrunnable jobs end the wait too and are printed with their state; the
    exit status is 0 whatever the jobs' states (as Pachyderm 1.9's flush returns failed jobs).
    """
    commits = flush_targets(target)
    for repo in repos:
        cli.pfs.inspect_repo(repo)  # RepoNotFound for a typo, before any wait
    deadline = None if timeout is None else time.monotonic() + timeout
    rows: list[Any] = []
    seen: set[str] = set()
    with _wait_bar() as bar, _watchdog(cli) as watch:
        for repo, ref in commits:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            for row in cli.jobs.flush_jobs(repo, ref, timeout=left, on_wait=chain(bar, watch)):
                if row.job.id not in seen and (not repos or row.job.output_repo in repos):
                    seen.add(row.job.id)
                    rows.append(row)
    if raw:
        echo_raw_lines((render_pps.flush_raw(r.job, r.status, r.output) for r in rows), raw)
        return
    now = cli.now()
    echo_table(render_pps.FLUSH_HEADERS, (render_pps.flush_row(r.job, r.status, r.output, now) for r in rows))


def flush_targets(words: tuple[str, ...]) -> list[tuple[str, str]]:
    """(repo, ref) of each commit flush-commit waits for: `repo@ref`/`repo/ref` words, any
    number (pachctl 1.x), or herd's two-word `REPO REF`."""
    if not words:
        raise click.UsageError("expected one or more repo@commit (or REPO COMMIT)")
    if len(words) == 2 and not any(c in words[0] for c in "@/"):
        repo, ref = parse_target(words, "REPO REF")
        return [(repo, ref)]
    out = []
    for word in words:
        if not any(c in word for c in "@/"):
            raise click.UsageError(f"'{word}': expected repo@commit (several commits: one such word each)")
        repo, ref = parse_target((word,), "REPO REF")
        out.append((repo, ref))
    return out


@contextmanager
def _watchdog(cli: CliContext) -> Iterator[Callable[..., None] | None]:
    """In distributed mode, an `on_wait` that says once when no scheduler is running."""
    settings = cli.scheduler_settings
    if not settings.broker or cli.address:
        # embedded: this process runs the jobs itself; through `herd serve`: the server waits
        # (and watches its own broker), a client may have no access to it
        yield None
        return
    from scheduler.cli.wiring import open_broker

    # First: without herd[cluster], this names the missing package before scheduler.lock needs redis.
    broker = open_broker(settings.broker, settings.queue)
    from scheduler.cli.waiting import scheduler_probe

    try:
        yield scheduler_watch(lambda: scheduler_probe(broker), lambda message: click.echo(message, err=True))
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
