"""Data verbs for files: put, get, list, glob, inspect, diff and delete (pachctl 1.x)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click

from scheduler import render
from scheduler.cli import progress, transfer
from scheduler.cli.context import (
    CliContext,
    echo_raw,
    echo_raw_lines,
    echo_table,
    parse_target,
    parse_target_optional,
    pass_cli,
    raw_option,
    settles,
    target_argument,
)
from scheduler.cli.group import cli
from scheduler.pachctl_json import RawStyle
from storage.errors import InvalidArgument

if TYPE_CHECKING:
    from storage.model import FileInfo




# --- writing --------------------------------------------------------------------------------


@settles
@cli.command("put-file")
@target_argument("REPO BRANCH-OR-COMMIT [PATH]")
@click.option("-f", "--file", "sources", multiple=True, metavar="SRC",
              help="A local file or folder, '-' (stdin, the default), or an http(s)://, file:// or "
                   "s3:// URL (with -r, an S3 prefix). Repeatable.")
@click.option("-r", "--recursive", is_flag=True,
              help="Put a local folder's files (or every object under an s3:// prefix), one commit.")
@click.option("--follow-symlinks", is_flag=True,
              help="With -r, follow symbolic links in the folder (like cp -L); by default they are "
                   "skipped, with a warning. FIFOs, sockets and devices are always skipped.")
@click.option("-a", "--append", is_flag=True,
              help="Append to existing files instead of replacing (with --split: continue the numbering).")
@click.option("-o", "--overwrite", is_flag=True, help="Replace existing files (the default).")
@click.option("-c", "--commit", "_commit", is_flag=True, hidden=True,
              help="Accepted for pachctl 1.x scripts; herd always commits.")
@click.option("--split", "split", type=click.Choice(["line", "json"]), default=None,
              help="Make PATH a directory of chunk files (0000000000000000, ...), cut between lines "
                   "or JSON values.")
@click.option("--target-file-datums", type=click.IntRange(min=0), default=0, metavar="N",
              help="With --split: up to N lines/values per chunk (neither limit: one per chunk).")
@click.option("--target-file-bytes", type=click.IntRange(min=0), default=0, metavar="N",
              help="With --split: close a chunk at the first line/value end at or past N bytes.")
@pass_cli
def put_file(cli: CliContext, target: tuple[str, ...], sources: tuple[str, ...],
             recursive: bool, follow_symlinks: bool, append: bool, overwrite: bool,
             _commit: bool, split: str | None, target_file_datums: int, target_file_bytes: int) -> None:
    """Put files into a branch (one commit) or into an open commit.

    Without PATH a file keeps the path it was given by (a URL its URL path), as in pachctl.
    """
    from scheduler.cli import put_sources

    (repo, ref), path = parse_target_optional(target, "REPO BRANCH-OR-COMMIT [PATH]")
    if append and overwrite:
        raise InvalidArgument("put-file takes --append or --overwrite, not both")
    if split is None and (target_file_datums or target_file_bytes):
        raise InvalidArgument("--target-file-datums and --target-file-bytes need --split line|json")
    uploads = put_sources.plan(sources, path, recursive, follow_symlinks, cli.settings,
                               warn=lambda line: click.echo(line, err=True))
    total = transfer.total_size(uploads)
    # No bar while someone types into stdin: it would draw over what they type.
    many = recursive or len(uploads) > 1
    show = progress.wanted(total, many) and not transfer.typing_on_stdin(uploads)
    with progress.meter(f"put {repo}@{ref}", total, show) as meter, ExitStack() as opened:
        pairs = transfer.open_sources(uploads, lambda url: _open_source(cli, url), meter, show)
        for _, source in pairs:
            if hasattr(source, "close"):
                opened.callback(source.close)
        if split is None:
            cli.pfs.put_files(repo, ref, pairs, append=append)
            return
        streams = put_sources.as_streams(pairs, uploads, opened)
        cli.pfs.put_split(repo, ref, streams, "json" if split == "json" else "line",
                          target_file_datums, target_file_bytes, append=append)


def _open_source(cli: CliContext, url: str) -> BinaryIO:
    from storage.factory import open_source

    return open_source(url, cli.settings)


@settles
@cli.command("delete-file")
@target_argument("REPO REF PATH")
@pass_cli
def delete_file(cli: CliContext, target: tuple[str, ...]) -> None:
    """Delete a file or a directory (in the open commit, or as a commit of its own)."""
    repo, ref, path = parse_target(target, "REPO REF PATH")
    cli.pfs.delete_file(repo, ref, path)


# --- reading --------------------------------------------------------------------------------


@cli.command("get-file")
@target_argument("REPO REF PATH")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write to this local file (or folder with -r) instead of stdout.")
@click.option("-r", "--recursive", is_flag=True, help="Get a directory into the -o folder.")
@pass_cli
def get_file(cli: CliContext, target: tuple[str, ...], output: Path | None,
             recursive: bool) -> None:
    """Print a file's bytes to stdout (streamed), or write it to -o."""
    repo, ref, path = parse_target(target, "REPO REF PATH")
    if output is None:
        if recursive:
            raise InvalidArgument("get-file -r needs -o DIR: a directory cannot go to stdout")
        stdout = click.get_binary_stream("stdout")
        cli.pfs.get_file(repo, ref, path, stdout)
        stdout.flush()
        return
    if not progress.wanted(None, many=recursive):  # not a terminal: no size lookup needed
        cli.pfs.get_file(repo, ref, path, output, recursive=recursive)
        return
    _get_with_progress(cli, repo, ref, path, output, recursive)


def _get_with_progress(cli: CliContext, repo: str, ref: str, path: str, output: Path,
                       recursive: bool) -> None:
    """get-file -o on a terminal: the same bytes, with a bar (per byte, or per file for -r)."""
    commit = cli.pfs.inspect_commit(repo, ref)  # pin the ref: every file from one commit
    info = cli.pfs.inspect_file(repo, commit.id, path)
    show = progress.wanted(info.size, many=recursive)
    with progress.meter(f"get {repo}@{ref}:{info.path}", info.size, show) as meter:
        if info.type == "file":
            with transfer.atomic_output(output) as out:
                cli.pfs.get_file(repo, commit.id, path, transfer.MeteredWriter(out, meter))
            return
        if not recursive:
            raise InvalidArgument(f"'{info.path}' in repo '{repo}' is a directory: use -r")
        # One recursive call: it refuses manifest paths outside -o and symlinks below it.
        cli.pfs.get_file(repo, commit.id, path, output, recursive=True, progress=meter.advance)


@cli.command("list-file")
@target_argument("REPO REF [PATH]")
@raw_option
@pass_cli
def list_file(cli: CliContext, target: tuple[str, ...], raw: RawStyle | None) -> None:
    """List the entries below PATH (default /): NAME TYPE SIZE."""
    (repo, ref), path = parse_target_optional(target, "REPO REF [PATH]")
    _echo_files(repo, cli.pfs.list_file(repo, ref, path or "/"), raw)


@cli.command("glob-file")
@target_argument("REPO REF PATTERN")
@raw_option
@pass_cli
def glob_file(cli: CliContext, target: tuple[str, ...], raw: RawStyle | None) -> None:
    """List the files and directories a glob pattern matches (the datum matcher)."""
    repo, ref, pattern = parse_target(target, "REPO REF PATTERN")
    _echo_files(repo, cli.pfs.glob_file(repo, ref, pattern), raw)  # an open commit's too (1.9)


def _echo_files(repo: str, infos: list[FileInfo], raw: RawStyle | None) -> None:
    if raw:
        echo_raw_lines((render.file_raw(repo, info) for info in infos), raw)
    else:
        echo_table(render.FILE_HEADERS, (render.file_row(info) for info in infos))


@cli.command("inspect-file")
@target_argument("REPO REF PATH")
@raw_option
@pass_cli
def inspect_file(cli: CliContext, target: tuple[str, ...], raw: RawStyle | None) -> None:
    """Show a file's or directory's path, type, size and hash."""
    repo, ref, path = parse_target(target, "REPO REF PATH")
    info = cli.pfs.inspect_file(repo, ref, path)
    if raw:
        echo_raw(render.file_raw(repo, info), raw)
    else:
        click.echo(render.file_fields(info))


@cli.command("diff-file")
@target_argument("REPO COMMIT PATH [OLD-REPO OLD-COMMIT OLD-PATH]")
@raw_option
@pass_cli
def diff_file(cli: CliContext, target: tuple[str, ...], raw: RawStyle | None) -> None:
    """Files added, modified and deleted below PATH between the old side (default: COMMIT's
    parent, same path) and COMMIT, in pachctl's order.

    Also `repo@commit:/path [old-repo@old-commit:/path]`; paths are shown as the new side's.
    """
    from scheduler.cli.diff_target import diff_targets

    new, old = diff_targets(target)
    if old is None:
        diff = cli.pfs.diff_file(new.repo, new.ref, None, new.path)
    else:  # another ref, repo or path: the old side moved onto the new path
        diff = cli.pfs.diff_paths(new.repo, new.ref, new.path, old.repo, old.ref, old.path)
    if raw:
        echo_raw(render.diff_raw(diff), raw)
    else:
        echo_table(render.DIFF_HEADERS, render.diff_rows(diff))
