"""`herd garbage-collect`: free what no commit, open commit or in-flight job can reach.

Storage computes reachability from repos (storage/gc.py); the scheduler's own roots are
gathered here and passed in as file entries (Roots keeps a loose chunk's blob and a packed
chunk's pack), since storage never imports the scheduler: datum
results (outputs uploaded but maybe not merged yet), datum indexes (outputs later jobs reuse
when they skip a datum) and the plans of jobs still running (their input files).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import click

from scheduler import render
from scheduler.cli.context import CliContext, echo_raw, echo_table, pass_cli, raw_option, storage_only
from scheduler.cli.group import cli
from scheduler.pachctl_json import RawStyle
from storage import layout

if TYPE_CHECKING:
    from scheduler.store import PpsStore
    from storage.gc import GcReport, Roots, RootSource
    from storage.objects import ObjectStore




def scheduler_roots(objects: ObjectStore) -> RootSource:
    """Blob and pack ids the scheduler's records hold; with `since`, only records written since then."""
    from scheduler.store import PpsStore
    from storage.gc import Roots

    def roots(since: datetime | None) -> Roots:
        records = PpsStore(objects)
        found = Roots()
        pipelines = set(records.pipeline_names())
        for info in objects.list_with_times(layout.PIPELINES_PREFIX):
            named = layout.index_of(info.key)
            if named is not None and (since is None or info.modified >= since):
                index = records.stored_index(*named)  # a layer's base is one of these too
                if index is not None:
                    for entry in index.entries.values():
                        found.add_entries(entry.outputs.values(), f"record '{info.key}'")
        for child in objects.list_children(layout.JOBS_PREFIX):
            if child.endswith("/"):
                _job_roots(records, child[:-1], pipelines, since, found)
        return found

    return roots


def _job_roots(records: PpsStore, job_id: str, pipelines: set[str], since: datetime | None, found: Roots) -> None:
    objects = records.objects
    if since is not None:  # the second look: whatever was written since the mark
        for info in objects.list_with_times(layout.job_prefix(job_id)):
            if info.modified < since:
                continue
            if info.key == layout.job_plan_key(job_id):
                _plan_roots(records, job_id, found)
            elif info.key.startswith(layout.results_prefix(job_id)):
                result = records.read_result(job_id, info.key.rsplit("/", 1)[1])
                if result is not None:
                    found.add_entries(result.outputs.values(), f"record '{info.key}'")
        return
    status = records.read_status(job_id)
    job = records.read_job(job_id)
    running = status is None or not status.state.terminal
    if running:
        _plan_roots(records, job_id, found)
    if running or (job is not None and job.pipeline in pipelines):
        for result in records.iter_results(job_id):
            found.add_entries(result.outputs.values(), f"a datum result of job '{job_id}'")


def _plan_roots(records: PpsStore, job_id: str, found: Roots) -> None:
    plan = records.read_plan(job_id)
    if plan is None:
        return
    for datum in plan.datums:
        for planned in datum.inputs:
            found.add_entries(planned.files.values(), f"record '{layout.job_plan_key(job_id)}'")


@storage_only
@cli.command("garbage-collect")
@click.option("--grace", default="60m", show_default=True, metavar="DURATION",
              help="Keep anything written less than this long before the run started "
                   "(minutes, or 90s, 30m, 1h, 2d); 0 keeps only what was written during the run.")
@click.option("--dry-run", is_flag=True, help="Report what would be freed; delete nothing.")
@raw_option
@pass_cli
def garbage_collect(cli: CliContext, grace: str, dry_run: bool, raw: RawStyle | None) -> None:
    """Free blobs, manifests, temp files and incomplete uploads nothing can reach.

    Safe while other commands write: nothing written after the run's start (less the grace) is
    removed. Deleting a repo frees its data at the next run, except files other repos share.
    """
    from storage.gc import collect_garbage, parse_grace

    period = parse_grace(grace)
    objects = cli.pfs.objects
    report = collect_garbage(objects, period, scheduler_roots(objects), dry_run=dry_run)
    if raw:
        echo_raw(_raw(report), raw)
        return
    echo_table(("KIND", "FREED", "SIZE", "BYTES"), _rows(report))
    verb = "would free" if dry_run else "freed"
    total = report.total
    click.echo(f"{verb} {total.count} objects, {render.human_size(total.bytes)} ({total.bytes} bytes); "
               f"kept {report.kept_blobs} reachable blobs, {report.kept_packs} packs and "
               f"{report.kept_manifests} manifests")


def _rows(report: GcReport) -> list[tuple[str, int, str, int]]:
    return [(kind, f.count, render.human_size(f.bytes), f.bytes) for kind, f in report.freed.items()]


def _raw(report: GcReport) -> dict[str, object]:
    return {
        "started": render.rfc3339(report.started),
        "cutoff": render.rfc3339(report.cutoff),
        "dry_run": report.dry_run,
        "freed": {kind: {"count": f.count, "bytes": f.bytes} for kind, f in report.freed.items()},
        "total": {"count": report.total.count, "bytes": report.total.bytes},
        "kept": {"blobs": report.kept_blobs, "packs": report.kept_packs, "manifests": report.kept_manifests},
    }
