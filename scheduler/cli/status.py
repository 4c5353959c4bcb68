"""`herd status` and `herd version`: observe storage, the broker and the heartbeats, then report
(the rows and problems come from scheduler/cluster.py, pure).

Observing never writes: the store is opened without its format check (a store a newer herd
wrote is reported, not refused) and the broker is only read. Redis is imported only when
HERD_BROKER is set, so the embedded default needs no herd[cluster].
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from scheduler import render
from scheduler.cli.context import CliContext, echo_raw, echo_table, pass_cli, raw_option
from scheduler.cli.group import cli
from scheduler.cluster import (
    STATUS_HEADERS, Probe, RunningJob, Snapshot, redact_url, status_report, version_report,
)
from scheduler.pachctl_json import RawStyle
from scheduler.version import herd_version

if TYPE_CHECKING:
    from scheduler.settings import SchedulerSettings
    from storage.objects import ObjectStore
    from storage.settings import StorageSettings

DOWN_EXIT = 6  # as Unavailable: something the mode needs does not answer or does not run
VERSION_HEADERS = ("COMPONENT", "NAME", "VERSION")


def storage_where(settings: StorageSettings, objects: ObjectStore | None) -> str:
    """Which storage, as a person finds it: a local path, or an S3 bucket/prefix and endpoint (never credentials)."""
    from urllib.parse import unquote, urlsplit

    url = settings.storage
    parts = urlsplit(url)
    if parts.scheme == "file":
        return unquote(parts.path)
    if parts.scheme == "s3":
        endpoint = getattr(objects, "endpoint", None) or settings.s3_endpoint_url or "AWS"
        return f"{url} at {redact_url(str(endpoint))}"
    return url


def observe(cli: CliContext, jobs: bool) -> Snapshot:
    """Look at everything `herd status` reports, now; failures become the probes' errors."""
    return observe_settings(cli.settings, cli.scheduler_settings, jobs)


def observe_settings(settings: StorageSettings, scheduler_settings: SchedulerSettings, jobs: bool) -> Snapshot:
    """`observe` for whoever holds the settings (the CLI, `herd serve` answering a remote status)."""
    from storage.errors import HerdError
    from storage.factory import open_object_store, read_format
    from storage.layout import STORAGE_FORMAT

    objects: ObjectStore | None = None
    storage_format: int | None = None
    running: tuple[RunningJob, ...] = ()
    try:
        objects = open_object_store(settings, check=False)
        storage_format = read_format(objects)
        storage = Probe(storage_where(settings, objects))
        if jobs and (storage_format or 0) <= STORAGE_FORMAT:  # never read records of a newer format
            running = _running_jobs(objects)
    except HerdError as exc:
        storage = Probe(storage_where(settings, objects), exc.message)
    except OSError as exc:  # a local folder that cannot be made or read
        storage = Probe(storage_where(settings, objects), f"{exc.strerror or exc}: '{exc.filename}'")
    snapshot = Snapshot(now=time.time(), storage=storage, storage_format=storage_format, jobs=running,
                        reads_up_to=STORAGE_FORMAT)
    if not scheduler_settings.broker:
        return snapshot
    return _observe_broker(snapshot, scheduler_settings.broker, scheduler_settings.queue)


def _observe_broker(snapshot: Snapshot, url: str, queue: str) -> Snapshot:
    from dataclasses import replace

    from scheduler.cli.wiring import open_broker
    from storage.errors import BrokerUnavailable

    broker = open_broker(url, queue)
    from scheduler.lock import active_scheduler

    try:
        now = broker.now()
        return replace(
            snapshot, now=now, broker=Probe(broker.where), queue=queue, queue_depth=broker.queue_depth(),
            active=active_scheduler(broker), schedulers=tuple(broker.heartbeats("scheduler")),
            workers=tuple(broker.heartbeats("worker")),
        )
    except BrokerUnavailable as exc:
        return replace(snapshot, broker=Probe(broker.where, exc.message), queue=queue)
    finally:
        broker.close()


def _running_jobs(objects: ObjectStore) -> tuple[RunningJob, ...]:
    """Every job not ended yet, newest first, with its counters."""
    from scheduler.queries import JobQueries
    from storage.repos import Pfs

    out = []
    for info, status in JobQueries(Pfs(objects)).list():
        if not status.state.terminal:
            out.append(RunningJob(
                pipeline=info.pipeline, job_id=info.id, state=status.state.value, processed=status.data_processed,
                skipped=status.data_skipped, failed=status.data_failed, total=status.data_total,
            ))
    return tuple(out)


@cli.command("status")
@raw_option
@pass_cli
def status(cli: CliContext, raw: RawStyle | None) -> None:
    """Show storage, broker, schedulers, workers, queue depth and running jobs.

    Exits 6 when something the mode needs is down: storage; with HERD_BROKER also the broker,
    an active scheduler and at least one worker. Each problem is one `error:` line on stderr.
    """
    if cli.address:
        from scheduler.remote.status import server_status

        report = server_status(cli.address, _client(cli))
    else:
        report = status_report(observe(cli, jobs=True))
    if raw:
        echo_raw(report.raw, raw)
    else:
        echo_table(STATUS_HEADERS, report.rows)
    for problem in report.problems:
        click.echo(f"error: {' '.join(problem.split())}", err=True)
    if not report.ok:
        raise click.exceptions.Exit(DOWN_EXIT)


@cli.command("version")
@raw_option
@pass_cli
def version(cli: CliContext, raw: RawStyle | None) -> None:
    """Show this herd's version, the storage format, and (with HERD_BROKER) each scheduler's and worker's version."""
    from storage.layout import STORAGE_FORMAT

    if cli.address:
        from scheduler.remote.status import server_version

        rows, data = server_version(herd_version(), cli.address, _client(cli))
    else:
        rows, data = version_report(herd_version(), observe(cli, jobs=False), STORAGE_FORMAT)
    if raw:
        echo_raw(data, raw)
        return
    click.echo(render.table(VERSION_HEADERS, rows))


def _client(cli: CliContext) -> Any:
    """The connection to the `herd serve` of HERD_ADDRESS (scheduler/remote/herd.py's)."""
    return getattr(cli.herd, "client")
