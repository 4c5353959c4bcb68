"""herd's command line: Pachyderm 1.x verbs on one click group (scheduler/cli/group.py).

Each module below defines its verbs on that group; importing it is what adds them.
"""

from __future__ import annotations

import click

from scheduler.cli import fsck, gc, jobs, pfs, pfs_files, pps, services, status  # noqa: F401 - their verbs join `cli`
from scheduler.cli import pfs_more  # noqa: F401 - copy-file, set-branch, delete-commit, subscribe-commit
from scheduler.cli import cron  # noqa: F401 - run-cron
from scheduler.cli import auth, serve  # noqa: F401 - auth ..., serve
from scheduler.cli.group import INTERRUPTED_EXIT, USAGE_EXIT, cli, fail

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the group and turn every outcome into an exit code."""
    try:
        result = cli.main(args=argv, prog_name="herd", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        # Ctrl-C outside a command (while parsing) or a confirmation prompt declined.
        raise SystemExit(fail("interrupted", INTERRUPTED_EXIT).exit_code) from None
    except click.UsageError as exc:
        exc.show()  # click's usage hint and its one `Error:` line, unchanged
        raise SystemExit(USAGE_EXIT) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    raise SystemExit(result if isinstance(result, int) else 0)
