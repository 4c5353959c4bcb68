"""`herd auth ...`: turn on a server's auth, log in, tokens and repo roles (scheduler/auth/).

Every verb talks to the server HERD_ADDRESS names; a token is printed only by the verbs that
make one (activate, create-token), and read from standard input rather than argv where it is
an input, so it stays out of shell history and process listings.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from scheduler.cli.context import CliContext, echo_table, pass_cli
from scheduler.cli.group import cli
from storage.errors import InvalidArgument


@cli.group("auth")
def auth() -> None:
    """Auth of a herd server: activate, login, whoami, tokens and repo roles."""


def _client(cli: CliContext) -> Any:
    if not cli.address:
        raise InvalidArgument("herd auth talks to a herd server: set HERD_ADDRESS=http://host:port")
    return cli.herd.client  # type: ignore[attr-defined]


def _folder(cli: CliContext) -> Any:
    from scheduler.remote.token_file import config_dir

    return config_dir(cli.remote_settings.config_dir)


def _read_token(given: str | None, prompt: str) -> str:
    if given:
        return given
    if sys.stdin.isatty():
        return str(click.prompt(prompt, hide_input=True)).strip()
    token = sys.stdin.readline().strip()
    if not token:
        raise InvalidArgument("no token given: pass it on standard input")
    return token


@auth.command("activate")
@click.option("--user", default="admin", show_default=True, help="The first admin's user name.")
@pass_cli
def activate(cli: CliContext, user: str) -> None:
    """Turn on the server's auth with USER as its first admin; print its token once, and log in with it."""
    from scheduler.remote.token_file import write_token

    issued = _client(cli).call("POST", "/auth/activate", json={"user": user})
    path = write_token(_folder(cli), issued["token"])
    click.echo(issued["token"])
    click.echo(f"auth is active; admin '{issued['user']}' is logged in (token in {path}). "
               "The token is shown only this once: keep it.", err=True)


@auth.command("login")
@click.option("--token", "given", default=None, help="The token (default: read from standard input).")
@pass_cli
def login(cli: CliContext, given: str | None) -> None:
    """Check a token with the server and keep it for the next commands (mode 0600)."""
    from scheduler.remote.client import ApiClient
    from scheduler.remote.token_file import write_token

    token = _read_token(given, "Token")
    client = ApiClient(_client(cli).address, token)
    try:
        who = client.call("GET", "/auth/whoami")
    finally:
        client.close()
    path = write_token(_folder(cli), token)
    click.echo(f"logged in as '{who['user']}'{' (admin)' if who['admin'] else ''}; token kept in {path}")


@auth.command("logout")
@pass_cli
def logout(cli: CliContext) -> None:
    """Forget the kept token."""
    from scheduler.remote.token_file import forget_token

    click.echo("logged out" if forget_token(_folder(cli)) else "no token was kept")


@auth.command("whoami")
@pass_cli
def whoami(cli: CliContext) -> None:
    """The user the token speaks for (and whether the server's auth is active)."""
    who = _client(cli).call("GET", "/auth/whoami")
    if not who["active"]:
        click.echo("auth is not active on this server: every request is allowed")
        return
    click.echo(f"{who['user']}{' (admin)' if who['admin'] else ''}")


@auth.command("create-token")
@click.argument("user")
@click.option("--ttl", default=None, metavar="DURATION", help="Lifetime, a Go duration (90s, 30m, 12h; default: none).")
@pass_cli
def create_token(cli: CliContext, user: str, ttl: str | None) -> None:
    """Make a token for USER (admins only); print it once."""
    from scheduler.spec import parse_duration

    seconds = parse_duration(ttl) if ttl else None
    issued = _client(cli).call("POST", "/auth/tokens", json={"user": user, "ttl_seconds": seconds})
    click.echo(issued["token"])
    if issued.get("expires"):
        click.echo(f"expires {issued['expires']}", err=True)


@auth.command("revoke-token")
@pass_cli
def revoke_token(cli: CliContext) -> None:
    """Revoke the token read from standard input (admins: any; a user: their own). It stops at once."""
    token = _read_token(None, "Token to revoke")
    answer = _client(cli).call("POST", "/auth/tokens/revoke", json={"token": token})
    click.echo("revoked" if answer["revoked"] else "no such token (unknown or already revoked)")


@auth.command("set-role")
@click.argument("repo")
@click.argument("user")
@click.argument("role", type=click.Choice(["reader", "writer", "owner", "none"]))
@pass_cli
def set_role(cli: CliContext, repo: str, user: str, role: str) -> None:
    """Give USER ROLE on REPO (reader, writer, owner; none takes it away). Owners of REPO and admins."""
    from scheduler.remote.pfs import _segment

    roles = _client(cli).call("PUT", f"/auth/roles/{_segment(repo, 'repo')}", json={"user": user, "role": role})
    _echo_roles(roles["roles"])


@auth.command("get-roles")
@click.argument("repo")
@pass_cli
def get_roles(cli: CliContext, repo: str) -> None:
    """The users holding a role on REPO: USER ROLE."""
    from scheduler.remote.pfs import _segment

    _echo_roles(_client(cli).call("GET", f"/auth/roles/{_segment(repo, 'repo')}")["roles"])


def _echo_roles(roles: dict[str, str]) -> None:
    echo_table(("USER", "ROLE"), sorted(roles.items()))
