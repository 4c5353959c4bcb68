"""`herd fsck [REPO]`: verify every record, manifest and blob a reader can reach.

Prints one line per damaged object and commit/path it affects, then fails with exit 8
(DataCorrupted) naming how much is damaged; prints a one-line OK summary otherwise.
"""

from __future__ import annotations

import click

from scheduler.cli.context import CliContext, pass_cli, storage_only
from scheduler.cli.group import cli




@storage_only
@cli.command("fsck")
@click.argument("repo", required=False)
@pass_cli
def fsck_command(cli: CliContext, repo: str | None) -> None:
    """Check every repo (or REPO): records, manifests and every blob, hashed in full.

    Missing objects count as damage. Exit 0 when everything checks out, 8 otherwise.
    """
    from storage.errors import DataCorrupted
    from storage.fsck import fsck

    report = fsck(cli.pfs.objects, repo)
    if report.ok:
        click.echo(f"ok: {report.summary()} verified")
        return
    for damage in report.damage:
        for line in damage.lines():
            click.echo(line)
    commits = report.affected_commits()
    raise DataCorrupted(
        f"fsck found {len(report.damage)} damaged or missing objects affecting "
        f"{len(commits)} commits (checked {report.summary()})"
    )
