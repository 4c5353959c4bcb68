"""Pipeline verbs (pachctl 1.x names): create/update/list/inspect/delete/stop/start-pipeline."""

from __future__ import annotations

from typing import Any

import click

from scheduler import render, render_pps
from scheduler.cli.context import (
    CliContext, echo_raw, echo_raw_lines, echo_table, pass_cli, raw_option, settles,
)
from scheduler.cli.group import cli




def _read_specs(cli: CliContext, source: str) -> list[Any]:
    """Every spec document in a file, `-` (stdin) or an http(s) URL, as the user wrote it."""
    from scheduler.spec import MAX_SPEC_BYTES, load_documents
    from storage.factory import open_source

    with open_source(source, cli.settings) as stream:
        # One byte past the limit is enough to refuse it; never read a huge file whole.
        return load_documents(stream.read(MAX_SPEC_BYTES + 1), source="stdin" if source == "-" else source)


def _apply(cli: CliContext, source: str, update: bool, reprocess: bool) -> None:
    # Every spec of the file is validated (with the graph among them) before any is written.
    for info in cli.pipelines.apply(_read_specs(cli, source), update=update, reprocess=reprocess):
        if info.ignored_fields:
            click.echo(
                f"warning: pipeline '{info.name}': herd does not implement these fields yet and ignores them: "
                + ", ".join(info.ignored_fields),
                err=True,
            )


@settles
@cli.command("create-pipeline")
@click.option("-f", "--file", "source", required=True, help="The spec: a JSON/YAML file, '-' for stdin, or a URL.")
@pass_cli
def create_pipeline(cli: CliContext, source: str) -> None:
    """Create pipelines from a spec; they process every commit of their inputs, now and later."""
    _apply(cli, source, update=False, reprocess=False)


@settles
@cli.command("update-pipeline")
@click.option("-f", "--file", "source", required=True, help="The new spec: a file, '-' or a URL.")
@click.option("--reprocess", is_flag=True, help="Rerun every datum with the new code, not only new ones.")
@pass_cli
def update_pipeline(cli: CliContext, source: str, reprocess: bool) -> None:
    """Replace a pipeline's spec with a new version (datums already done are reused)."""
    _apply(cli, source, update=True, reprocess=reprocess)


@cli.command("list-pipeline")
@raw_option
@pass_cli
def list_pipeline(cli: CliContext, raw: bool) -> None:
    """List pipelines: NAME VERSION INPUT CREATED STATE."""
    infos = cli.pipelines.list()
    if raw:
        echo_raw_lines(render_pps.pipeline_raw(i) for i in infos)
        return
    now = cli.now()
    echo_table(render_pps.PIPELINE_HEADERS, (render_pps.pipeline_row(i, now) for i in infos))


@cli.command("inspect-pipeline")
@click.argument("name")
@raw_option
@pass_cli
def inspect_pipeline(cli: CliContext, name: str, raw: bool) -> None:
    """Show a pipeline's spec, version and state."""
    info = cli.pipelines.inspect(name)
    if raw:
        echo_raw(render_pps.pipeline_raw(info))
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
