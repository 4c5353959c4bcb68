"""herd's command line: one click group, Pachyderm 1.x verbs, one HerdError → exit-code handler.

Each command module defines its commands on its own registry group and exposes
`register(cli)`; adding a module of commands is one entry in `COMMAND_MODULES`. Modules keep
storage imports inside the command bodies (via `CliContext.pfs`), so `herd --help` stays fast
and never imports boto3.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from scheduler.cli.context import CliContext
from storage.errors import HerdError

# One line per module of commands; each exposes `register(group)`.
COMMAND_MODULES = (
    "scheduler.cli.pfs",
    "scheduler.cli.pfs_files",
    "scheduler.cli.pps",
    "scheduler.cli.jobs",
    "scheduler.cli.services",
    "scheduler.cli.gc",
    "scheduler.cli.fsck",
)

# Verbs after which the embedded default runs the jobs the change caused before returning
# (with HERD_BROKER set, the scheduler service does that and these return at once).
SETTLE_AFTER = frozenset({
    "put-file", "delete-file", "finish-commit", "create-branch",
    "create-pipeline", "update-pipeline", "start-pipeline", "stop-job", "restart-datum",
})

INTERRUPTED_EXIT = 130  # 128 + SIGINT, what shells report for Ctrl-C


def fail(message: str, exit_code: int) -> click.exceptions.Exit:
    """Print `error: <message>` as one line on stderr; return the Exit to raise."""
    one_line = " ".join(str(message).split())
    click.echo(f"error: {one_line}", err=True)
    return click.exceptions.Exit(exit_code)


class HerdGroup(click.Group):
    """A group whose commands report HerdError as one line, so CliRunner sees what users see."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            if ctx.invoked_subcommand in SETTLE_AFTER:
                ctx.find_object(CliContext).settle()
            return result
        except HerdError as exc:
            raise fail(exc.message, exc.exit_code) from None
        except KeyboardInterrupt:
            # Caught here, not in main(): click's own handler prints a blank line and "Aborted!".
            raise fail("interrupted", INTERRUPTED_EXIT) from None
        except OSError as exc:
            # Local files the CLI itself opens (-o, -f paths): the message names the file.
            if exc.filename is None or exc.strerror is None:
                raise
            raise fail(f"{exc.strerror}: '{exc.filename}'", 1) from None


@click.group(cls=HerdGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """herd: versioned data and pipelines, with pachctl's verbs."""
    ctx.obj = CliContext()
    if not ctx.resilient_parsing:  # shell completion must not fail on the environment
        ctx.obj.load_settings()  # every HERD_* variable, once, before the command does any work


def _register_modules() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(cli)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the group and turn every outcome into an exit code."""
    try:
        result = cli.main(args=argv, prog_name="herd", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        # Ctrl-C outside a command (while parsing) or a confirmation prompt declined.
        raise SystemExit(fail("interrupted", INTERRUPTED_EXIT).exit_code) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    raise SystemExit(result if isinstance(result, int) else 0)


_register_modules()
