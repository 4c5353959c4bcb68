"""The pachctl 1.x data verbs added for issue 14: copy-file, set-branch, delete-commit and
subscribe-commit. Each parses its words, calls the porcelain and renders."""

from __future__ import annotations

import time

import click

from scheduler import render
from scheduler.cli.context import (
    CliContext,
    parse_target,
    pass_cli,
    raw_option,
    settles,
    target_argument,
)
from scheduler.cli.group import cli
from scheduler.pachctl_json import RawStyle, shaped
from storage.errors import BranchNotFound


@settles
@cli.command("copy-file")
@click.argument("words", nargs=-1, metavar="SRC-REPO SRC-REF SRC-PATH DST-REPO DST-REF DST-PATH")
@click.option("-o", "--overwrite", is_flag=True,
              help="Replace what is at DST-PATH instead of appending to it.")
@pass_cli
def copy_file(cli: CliContext, words: tuple[str, ...], overwrite: bool) -> None:
    """Copy a file or directory into a branch or open commit, of this repo or another.

    Each side may also be written `repo@ref:/path` (or `repo/ref PATH`). Without -o each file
    is appended to what DST-PATH holds (put-file's default); no bytes are copied, only entries.
    """
    (src_repo, src_ref, src_path), (dst_repo, dst_ref, dst_path) = _two_targets(words)
    cli.pfs.copy_file(src_repo, src_ref, src_path, dst_repo, dst_ref, dst_path, overwrite=overwrite)


def _two_targets(words: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """SRC and DST, three words each, or one word each in a combined form."""
    metavar = "REPO REF PATH"
    for cut in range(1, len(words)):
        try:
            return parse_target(words[:cut], metavar), parse_target(words[cut:], metavar)
        except click.UsageError:
            continue
    raise click.UsageError(
        "expected SRC-REPO SRC-REF SRC-PATH DST-REPO DST-REF DST-PATH "
        "(each side may be repo@ref:/path)"
    )


@settles
@cli.command("set-branch")
@target_argument("REPO COMMIT BRANCH")
@pass_cli
def set_branch(cli: CliContext, target: tuple[str, ...]) -> None:
    """Point BRANCH at COMMIT (pachctl 1.4; 1.8+: create-branch --head). COMMIT may be open."""
    repo, commit, branch = parse_target(target, "REPO COMMIT BRANCH")
    cli.pfs.set_branch(repo, commit, branch)


@cli.command("delete-commit")
@target_argument("REPO COMMIT")
@pass_cli
def delete_commit(cli: CliContext, target: tuple[str, ...]) -> None:
    """Delete a commit: an open one is discarded; a finished one must have no child and no
    downstream commit, and branches whose head it is move back to its parent."""
    repo, commit = parse_target(target, "REPO COMMIT")
    cli.pfs.delete_commit(repo, commit)


@cli.command("subscribe-commit")
@target_argument("REPO BRANCH")
@click.option("--new", "only_new", is_flag=True, help="Only commits finished after it starts.")
@click.option("--from", "since", default=None, metavar="COMMIT",
              help="Start after this commit (default: the branch's first commit).")
@click.option("-n", "--number", type=click.IntRange(min=1), default=None,
              help="Stop after this many commits (default: run until interrupted).")
@click.option("--interval", type=click.FloatRange(min=0.01), default=0.5, hidden=True,
              help="Seconds between looks at the branch.")
@raw_option
@pass_cli
def subscribe_commit(cli: CliContext, target: tuple[str, ...], only_new: bool, since: str | None,
                     number: int | None, interval: float, raw: RawStyle | None) -> None:
    """Print each commit of BRANCH as it is finished (its id, or JSON with --raw), oldest first.

    Runs until interrupted, or until -n commits were printed. Without --new it starts with the
    commits already on the branch (after --from).
    """
    repo, branch = parse_target(target, "REPO BRANCH")
    if only_new and since is not None:
        raise click.UsageError("subscribe-commit takes --new or --from, not both")
    pfs = cli.pfs
    if only_new:  # a branch created later: every commit on it is new
        try:
            seen = pfs.inspect_branch(repo, branch).head
        except BranchNotFound:
            seen = None
    else:
        seen = pfs.inspect_commit(repo, since).id if since is not None else None
    printed = 0
    while number is None or printed < number:
        head, found = pfs.commits_after(repo, branch, seen)
        for commit in found[: None if number is None else number - printed]:
            click.echo(render.to_json(shaped(render.commit_raw(commit), raw), indent=None) if raw else commit.id)
            printed += 1
        seen = head if head is not None else seen
        if number is not None and printed >= number:
            break
        time.sleep(interval)
