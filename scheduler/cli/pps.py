"""Pipeline verbs (pachctl 1.x names): create/update/list/inspect/delete/stop/start-pipeline."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from scheduler import render
from scheduler.cli.context import (
    CliContext, echo_raw, echo_raw_lines, pass_cli, raw_option, settles,
)
from scheduler.cli.lazy import lazy_module
from scheduler.cli.group import cli
from scheduler.pachctl_json import PACHCTL, RawStyle, pipeline_info
from storage.paths import printable

if TYPE_CHECKING:
    from scheduler import render_pps
else:  # job records and pydantic models: only the verbs that show them pay the import
    render_pps = lazy_module("scheduler.render_pps")




def _read_specs(cli: CliContext, source: str) -> list[Any]:
    """Every spec document in a file, `-` (stdin) or an http(s) URL, as the user wrote it."""
    from scheduler.spec import MAX_SPEC_BYTES, load_documents
    from storage.factory import open_source

    with open_source(source, cli.settings) as stream:
        # One byte past the limit is enough to refuse it; never read a huge file whole.
        return load_documents(stream.read(MAX_SPEC_BYTES + 1), source="stdin" if source == "-" else source)


def _apply(cli: CliContext, source: str, update: bool, reprocess: bool) -> None:
    _apply_docs(cli, _read_specs(cli, source), update, reprocess)


def _apply_docs(cli: CliContext, docs: list[Any], update: bool, reprocess: bool) -> None:
    # Every spec of the file is validated (with the graph among them) before any is written.
    from scheduler.spec import spec_notes

    for info in cli.pipelines.apply(docs, update=update, reprocess=reprocess):
        for note in spec_notes(info.spec):  # once per create/update, not each time a job reads the spec
            click.echo(f"note: pipeline '{info.name}': {note}", err=True)
        if info.ignored_fields:
            click.echo(
                f"warning: pipeline '{info.name}': herd does not implement these fields yet and ignores them: "
                + ", ".join(info.ignored_fields),
                err=True,
            )
    _warn_without_scheduler(cli)


def _warn_without_scheduler(cli: CliContext) -> None:
    """In distributed mode, say when no scheduler runs: the pipeline's jobs would wait in silence."""
    settings = cli.scheduler_settings
    if not settings.broker or cli.address:
        return  # embedded: this process runs the jobs itself; through `herd serve`: its broker, not ours
    from scheduler.cli.waiting import scheduler_probe, warn_without_scheduler
    from scheduler.cli.wiring import open_broker

    broker = open_broker(settings.broker, settings.queue)
    try:
        warn_without_scheduler(lambda: scheduler_probe(broker), lambda message: click.echo(message, err=True))
    finally:
        broker.close()


@settles
@cli.command("create-pipeline")
@click.option("-f", "--file", "source", default="-", show_default=False,
              help="The spec: a JSON/YAML file, '-' for stdin (the default), or an http(s)://, file:// or "
                   "s3:// URL.")
@pass_cli
def create_pipeline(cli: CliContext, source: str) -> None:
    """Create pipelines from a spec; they process every commit of their inputs, now and later."""
    _apply(cli, source, update=False, reprocess=False)


@settles
@cli.command("update-pipeline")
@click.option("-f", "--file", "source", default="-", show_default=False,
              help="The new spec: a file, '-' (stdin, the default) or a URL.")
@click.option("--reprocess", is_flag=True, help="Rerun every datum with the new code, not only new ones.")
@pass_cli
def update_pipeline(cli: CliContext, source: str, reprocess: bool) -> None:
    """Replace a pipeline's spec with a new version (datums already done are reused)."""
    _apply(cli, source, update=True, reprocess=reprocess)


@settles
@cli.command("edit-pipeline")
@click.argument("name")
@click.option("--reprocess", is_flag=True, help="Rerun every datum with the new code, not only new ones.")
@click.option("--editor", default=None, help="The editor command (default: $VISUAL or $EDITOR, else vim, nano or vi).")
@click.option("-o", "--output", "output", type=click.Choice(["json", "yaml"]), default="json",
              help="Edit the spec as JSON (the default) or YAML.")
@pass_cli
def edit_pipeline(cli: CliContext, name: str, reprocess: bool, editor: str | None, output: str) -> None:
    """Open a pipeline's spec in an editor, then update the pipeline with what was saved.

    A spec that does not parse or validate, or that names another pipeline, is refused with
    the reason and nothing changes; an unchanged spec updates nothing."""
    from scheduler.cli.edit_spec import edited_specs, spec_text

    info = cli.pipelines.inspect(name)
    before = spec_text(info.spec, output)
    after = click.edit(before, editor=editor, extension=f".{output}", require_save=False)
    docs = edited_specs(name, info.spec, after)
    if docs is None:
        click.echo("Pipeline unchanged, no update will be performed.")
        return
    _apply_docs(cli, docs, update=True, reprocess=reprocess)


# list-pipeline: pachctl's columns (render_pps.PIPELINE_HEADERS), then the newest job's progress
# and state (pachctl's "LAST JOB").
LIST_PIPELINE_EXTRA_HEADERS = ("JOB PROGRESS", "LAST JOB")
FAILED_JOB_STATES = frozenset({"JOB_FAILURE", "JOB_KILLED", "JOB_UNRUNNABLE"})


@cli.command("list-pipeline")
@raw_option
@pass_cli
def list_pipeline(cli: CliContext, raw: RawStyle | None) -> None:
    """List pipelines: NAME VERSION INPUT CREATED STATE JOB PROGRESS LAST JOB (failures in red on a terminal)."""
    infos = cli.pipelines.list()
    newest = cli.jobs.last_jobs()
    last: dict[str, tuple[str | None, Any]] = {i.name: newest.get(i.name, (None, None)) for i in infos}
    if raw:
        echo_raw_lines((_pipeline_raw({**render_pps.pipeline_raw(i), "last_job": _last_job_raw(*last[i.name])}, raw)
                        for i in infos), raw)
        return
    now = cli.now()
    rows = []
    for info in infos:
        job_id, status = last[info.name]
        state = render_pps.job_state(status) if status is not None else render.NONE
        progress = render_pps.progress(status) if status is not None else render.NONE
        failed = state if status is not None and status.state.value in FAILED_JOB_STATES else None
        rows.append(((*render_pps.pipeline_row(info, now), progress, state), failed))
    text = render.table((*render_pps.PIPELINE_HEADERS, *LIST_PIPELINE_EXTRA_HEADERS), [row for row, _ in rows])
    click.echo(colour_failures(text, [failed for _, failed in rows], sys.stdout.isatty()))


def _pipeline_raw(record: dict[str, Any], style: RawStyle) -> dict[str, Any]:
    """--raw lays a pipeline out as pachctl 1.x's PipelineInfo: the spec's fields at the top."""
    return pipeline_info(record) if style == PACHCTL else record


def _last_job_raw(job_id: str | None, status: Any) -> dict[str, Any] | None:
    if job_id is None or status is None:
        return None
    return {
        "job": {"id": job_id}, "state": status.state.value, "reason": status.reason,
        "data_processed": status.data_processed, "data_skipped": status.data_skipped,
        "data_failed": status.data_failed, "data_recovered": status.data_recovered, "data_total": status.data_total,
    }


def colour_failures(table: str, failed: list[str | None], terminal: bool) -> str:
    """The table with each failed row's last cell (`failed[i]`: that cell, None when the row
    did not fail) in red, only for a terminal (pure).

    Styled after layout: escape codes inside cells would break the widths, and render.table
    escapes control characters in cells anyway. Pipes get the plain text."""
    if not terminal or not any(failed):
        return table
    lines = table.split("\n")
    for index, cell in enumerate(failed, start=1):
        shown = printable(cell).rstrip() if cell else ""
        if shown and index < len(lines) and lines[index].endswith(shown):
            lines[index] = lines[index][: -len(shown)] + click.style(shown, fg="red", bold=True)
    return "\n".join(lines)


@cli.command("inspect-pipeline")
@click.argument("name")
@raw_option
@pass_cli
def inspect_pipeline(cli: CliContext, name: str, raw: RawStyle | None) -> None:
    """Show a pipeline's spec, version and state."""
    info = cli.pipelines.inspect(name)
    if raw:
        echo_raw(_pipeline_raw(render_pps.pipeline_raw(info), raw), raw)
        return
    click.echo(render.fields([
        ("Name", info.name), ("Version", info.version), ("Created", render.rfc3339(info.created)),
        ("State", render_pps.pipeline_state(info)), ("Input", render_pps.input_summary(info.spec)),
        ("Transform", render.to_json(info.spec.get("transform", {}), indent=None)),
        ("Output Branch", info.spec.get("output_branch", "master")),
        ("Ignored Fields", ", ".join(info.ignored_fields) or render.NONE),
    ]))


@cli.command("delete-pipeline")
@click.argument("name")
@click.option("--keep-repo", is_flag=True, help="Keep the pipeline's output repo.")
@pass_cli
def delete_pipeline(cli: CliContext, name: str, keep_repo: bool) -> None:
    """Delete a pipeline, its jobs and (unless --keep-repo) its output repo."""
    cli.pipelines.delete(name, keep_repo=keep_repo)


@cli.command("stop-pipeline")
@click.argument("name")
@pass_cli
def stop_pipeline(cli: CliContext, name: str) -> None:
    """Pause a pipeline: no new jobs start until start-pipeline."""
    cli.pipelines.set_stopped(name, True)


@settles
@cli.command("start-pipeline")
@click.argument("name")
@pass_cli
def start_pipeline(cli: CliContext, name: str) -> None:
    """Resume a paused pipeline; it catches up on the commits it missed."""
    cli.pipelines.set_stopped(name, False)
