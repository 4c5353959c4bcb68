"""Data verbs for repos, commits and branches (pachctl 1.x names and columns).

Each command parses its words, calls one `Pfs` method and renders; rules live in the porcelain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import click

from scheduler import render
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

if TYPE_CHECKING:
    from storage.model import Branch




def newest_first(branches: Sequence[Branch], changed: Mapping[str, datetime | None]) -> list[Branch]:
    """Branches by their last change, newest first; those without commits last, by name."""
    dated = sorted((b for b in branches if changed.get(b.name)),
                   key=lambda b: (changed[b.name], b.name), reverse=True)
    return dated + sorted((b for b in branches if not changed.get(b.name)), key=lambda b: b.name)


def _last_change(cli: CliContext, branch: Branch) -> datetime | None:
    """When the branch last changed: its open commit's start, else its head's finish."""
    ref = branch.open_commit or branch.head
    if ref is None:
        return None
    commit = cli.pfs.inspect_commit(branch.repo, ref)
    return commit.finished or commit.started


# --- repos ----------------------------------------------------------------------------------


@cli.command("create-repo")
@click.argument("name")
@click.option("-d", "--description", default="", help="A description of the repo.")
@pass_cli
def create_repo(cli: CliContext, name: str, description: str) -> None:
    """Create a new repo."""
    cli.pfs.create_repo(name, description=description)


@cli.command("list-repo")
@raw_option
@pass_cli
def list_repo(cli: CliContext, raw: RawStyle | None) -> None:
    """List repos: NAME CREATED SIZE (as pachctl: the size of master's head, as list-commit shows it)."""
    infos = cli.pfs.list_repos()
    if raw:
        echo_raw_lines((render.repo_raw(info) for info in infos), raw)
        return
    now = cli.now()
    echo_table(render.REPO_HEADERS, (render.repo_row(info, now) for info in infos))


@cli.command("inspect-repo")
@click.argument("name")
@raw_option
@pass_cli
def inspect_repo(cli: CliContext, name: str, raw: RawStyle | None) -> None:
    """Show a repo's details."""
    info = cli.pfs.inspect_repo(name)
    if raw:
        echo_raw(render.repo_raw(info), raw)
    else:
        click.echo(render.repo_fields(info, cli.now()))


@cli.command("delete-repo")
@click.argument("name")
@click.option("-f", "--force", is_flag=True, help="Delete even when the repo has commits.")
@pass_cli
def delete_repo(cli: CliContext, name: str, force: bool) -> None:
    """Delete a repo with its branches and commits."""
    cli.pfs.delete_repo(name, force=force)


# --- commits --------------------------------------------------------------------------------


@cli.command("start-commit")
@target_argument("REPO [BRANCH]")
@click.option("-p", "--parent", default=None, help="The parent commit (a branch or commit id).")
@click.option("-m", "--description", "--message", default="", help="A description of the commit.")
@pass_cli
def start_commit(cli: CliContext, target: tuple[str, ...], parent: str | None,
                 description: str) -> None:
    """Start a commit on BRANCH (default master); prints its id.

    A branch has one open commit at a time: while it has one, this fails naming it, and
    put-file, delete-file and finish-commit of BRANCH act on that open commit.
    """
    (repo,), branch = parse_target_optional(target, "REPO [BRANCH]")
    commit = cli.pfs.start_commit(repo, branch or "master", parent=parent,
                                  description=description)
    click.echo(commit.id)


@settles
@cli.command("finish-commit")
@target_argument("REPO COMMIT")
@click.option("-m", "--description", "--message", default=None, help="Replace the description.")
@pass_cli
def finish_commit(cli: CliContext, target: tuple[str, ...], description: str | None) -> None:
    """Finish an open commit (by id, or BRANCH for its open one), making it its branch's head."""
    repo, commit = parse_target(target, "REPO COMMIT")
    cli.pfs.finish_commit(repo, commit, description=description)


@cli.command("list-commit")
@target_argument("REPO [BRANCH]")
@click.option("-f", "--from", "since", default=None, metavar="COMMIT",
              help="Only the commits after this one (it is not listed).")
@click.option("-n", "--number", type=click.IntRange(min=0), default=0,
              help="At most this many commits (0 = all).")
@raw_option
@pass_cli
def list_commit(cli: CliContext, target: tuple[str, ...], since: str | None, number: int,
                raw: RawStyle | None) -> None:
    """List commits, newest first: REPO COMMIT PARENT STARTED DURATION SIZE."""
    (repo,), branch = parse_target_optional(target, "REPO [BRANCH]")
    commits = cli.pfs.list_commits(repo, branch, limit=number or None, since=since)
    if raw:
        echo_raw_lines((render.commit_raw(c) for c in commits), raw)
        return
    now = cli.now()
    echo_table(render.COMMIT_HEADERS, (render.commit_row(c, now) for c in commits))


@cli.command("inspect-commit")
@target_argument("REPO REF")
@raw_option
@pass_cli
def inspect_commit(cli: CliContext, target: tuple[str, ...], raw: RawStyle | None) -> None:
    """Show a commit: branch, parent, times, size, provenance."""
    repo, ref = parse_target(target, "REPO REF")
    commit = cli.pfs.inspect_commit(repo, ref)
    if raw:
        echo_raw(render.commit_raw(commit), raw)
    else:
        click.echo(render.commit_fields(commit, cli.now()))


# --- branches -------------------------------------------------------------------------------


@settles
@cli.command("create-branch")
@target_argument("REPO BRANCH")
@click.option("--head", default=None,
              help="The commit (or branch) the new branch points at; an open commit is shared.")
@pass_cli
def create_branch(cli: CliContext, target: tuple[str, ...], head: str | None) -> None:
    """Create a branch, or move an existing one to --head.

    With an open commit as --head, the branch shares it: put-file on the branch writes into it,
    and when it is finished the branch points at it."""
    repo, branch = parse_target(target, "REPO BRANCH")
    cli.pfs.create_branch(repo, branch, head=head)


@cli.command("list-branch")
@click.argument("repo")
@raw_option
@pass_cli
def list_branch(cli: CliContext, repo: str, raw: RawStyle | None) -> None:
    """List a repo's branches, newest first (as pachctl): BRANCH HEAD."""
    found = cli.pfs.list_branches(repo)
    branches = newest_first(found, {b.name: _last_change(cli, b) for b in found})
    if raw:
        echo_raw_lines((render.branch_raw(b) for b in branches), raw)
    else:
        echo_table(render.BRANCH_HEADERS, (render.branch_row(b) for b in branches))


@cli.command("delete-branch")
@target_argument("REPO BRANCH")
@click.option("-f", "--force", is_flag=True, help="Also discard the branch's open commits.")
@pass_cli
def delete_branch(cli: CliContext, target: tuple[str, ...], force: bool) -> None:
    """Delete a branch; its commits stay reachable by id."""
    repo, branch = parse_target(target, "REPO BRANCH")
    cli.pfs.delete_branch(repo, branch, force=force)
