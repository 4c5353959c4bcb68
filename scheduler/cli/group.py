"""herd's one click group: HerdError as one line and an exit code, `--version`, and the
embedded default's run of owed jobs after verbs marked `@settles` (scheduler/cli/context.py).

Command modules define their verbs on this group (`@cli.command`); scheduler/cli/__init__.py
imports them. They keep storage imports inside command bodies (via `CliContext.pfs`), so
`herd --help` stays fast and never imports boto3.
"""

from __future__ import annotations

from typing import Any

import click

from scheduler.version import herd_version
from scheduler.cli.context import CliContext, on_storage, runs_owed_jobs
from storage.errors import HerdError

INTERRUPTED_EXIT = 130  # 128 + SIGINT, what shells report for Ctrl-C
USAGE_EXIT = 64  # EX_USAGE (sysexits.h): kept apart from 2, which HerdError uses for "not found"


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
            if ctx.invoked_subcommand and runs_owed_jobs(self.get_command(ctx, ctx.invoked_subcommand)):
                ctx.ensure_object(CliContext).settle()
            return result
        except click.UsageError as exc:
            exc.exit_code = USAGE_EXIT  # never 2, which means "not found" here
            raise
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


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    # Eager and lazy: runs before settings are loaded, and plain `herd CMD` never reads metadata.
    if value and not ctx.resilient_parsing:
        click.echo(f"herd, version {herd_version()}")
        ctx.exit()


@click.group(cls=HerdGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show herd's version and exit.")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """herd: versioned data and pipelines, with pachctl's verbs."""
    ctx.obj = CliContext()
    if not ctx.resilient_parsing:  # shell completion must not fail on the environment
        ctx.obj.load_settings()  # every HERD_* variable, once, before the command does any work
        command = cli.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
        if ctx.obj.address and on_storage(command):
            raise HerdError(f"herd {ctx.invoked_subcommand} works on storage itself, which the herd server at "
                            f"{ctx.obj.address} holds: run it where HERD_STORAGE is set, with HERD_ADDRESS unset")
