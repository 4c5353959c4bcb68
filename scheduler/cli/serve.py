"""`herd serve`: herd's HTTP API (scheduler/server/) on this host's storage and broker."""

from __future__ import annotations

import click

from scheduler.cli.context import CliContext, pass_cli, storage_only
from scheduler.cli.group import cli


@storage_only
@cli.command("serve")
@click.option("--host", default=None, help="Address to listen on. Default: HERD_SERVE_HOST, else 127.0.0.1.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="TCP port. Default: HERD_SERVE_PORT, else 8650.")
@pass_cli
def serve(cli: CliContext, host: str | None, port: int | None) -> None:
    """Serve herd's HTTP API at /api/v1 (OpenAPI at /docs) until interrupted.

    The server holds what HERD_STORAGE and HERD_BROKER name; a user of it needs only its address
    (HERD_ADDRESS=http://host:port). Without HERD_BROKER it runs the jobs a change causes before
    it answers, as the CLI does.
    """
    from scheduler.cli.wiring import serve as run

    settings = cli.server_settings
    run(cli.herd, host or settings.serve_host, port or settings.serve_port)
