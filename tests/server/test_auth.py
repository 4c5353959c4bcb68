"""Auth through a real `herd serve`: off until activated, then every API request needs a valid
token; tokens are shown once, kept with mode 0600, revoked or expired at once, never logged."""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from scheduler.cli import cli
from tests.fixtures.server import HerdServer, start_server, stop_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HerdServer]:
    started = start_server(tmp_path_factory.mktemp("auth"))
    yield started
    stop_server(started)


@pytest.fixture(scope="module")
def admin(server: HerdServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """Auth activated through the CLI: the admin's token and the folder it was kept in."""
    folder = tmp_path_factory.mktemp("admin")
    # Given a server with auth off: anyone may do anything
    herd(server, folder, "create-repo", "before")
    assert "not active" in herd(server, folder, "auth", "whoami").stdout
    # When it is activated, the admin's token is printed once
    token = herd(server, folder, "auth", "activate").stdout.strip()
    assert token.startswith("herd_")
    return token, folder


def herd(server: HerdServer, config: Path, *args: str, token: str | None = None, input: str | None = None,
         code: int = 0) -> Result:
    env = {"HERD_ADDRESS": server.url, "HERD_CONFIG_DIR": str(config), "HERD_TOKEN": token,
           "HERD_STORAGE": f"file://{config / 'unused'}"}
    result = CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)
    assert result.exit_code == code, f"exit {result.exit_code}: {result.output}{result.stderr}"
    return result


def test_auth_from_activation_to_revocation(server: HerdServer, admin: tuple[str, Path], tmp_path: Path) -> None:
    admin_token, admin_dir = admin
    alice_dir = tmp_path / "alice"
    # The admin's token is kept with mode 0600, in a folder of mode 0700
    kept = admin_dir / "token"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and kept.read_text().strip() == admin_token
    assert stat.S_IMODE(admin_dir.stat().st_mode) == 0o700
    assert herd(server, admin_dir, "auth", "whoami").stdout == "admin (admin)\n"
    assert "already active" in herd(server, admin_dir, "auth", "activate", code=3).stderr
    # Then a request without a token, or with a wrong one, is refused (401, exit 10)
    refused = herd(server, alice_dir, "list-repo", code=10)
    assert refused.stderr.startswith("error: auth is active and no token was given")
    wrong = "herd_" + "x" * 43
    assert "unknown or revoked" in herd(server, alice_dir, "list-repo", token=wrong, code=10).stderr
    assert wrong not in herd(server, alice_dir, "list-repo", token=wrong, code=10).stderr
    assert httpx.get(server.url + "/api/v1/repos", timeout=10).status_code == 401
    assert httpx.get(server.url + "/api/v1/health", timeout=10).status_code == 200
    # And the admin makes a token for alice, who logs in with it from standard input
    alice_token = herd(server, admin_dir, "auth", "create-token", "alice").stdout.strip()
    assert "logged in as 'alice'" in herd(server, alice_dir, "auth", "login", input=alice_token + "\n").stdout
    assert herd(server, alice_dir, "auth", "whoami").stdout == "alice\n"
    # But alice is no admin
    assert "only an admin can create tokens" in herd(server, alice_dir, "auth", "create-token", "bob",
                                                     code=11).stderr
    # When the admin revokes alice's token, it stops working at once
    assert herd(server, admin_dir, "auth", "revoke-token", input=alice_token + "\n").stdout == "revoked\n"
    assert "unknown or revoked" in herd(server, alice_dir, "auth", "whoami", code=10).stderr
    # And a token with a lifetime stops when it ends
    short = herd(server, admin_dir, "auth", "create-token", "carol", "--ttl", "1s").stdout.strip()
    assert herd(server, tmp_path / "carol", "auth", "whoami", token=short).stdout == "carol\n"
    time.sleep(1.2)
    assert "expired" in herd(server, tmp_path / "carol", "auth", "whoami", token=short, code=10).stderr
    # And logging out forgets the kept token
    assert herd(server, alice_dir, "auth", "logout").stdout == "logged out\n"
    assert not (alice_dir / "token").exists()
    # And no token ever reached the server's log
    log = server.log_text()
    for token in (admin_token, alice_token, short):
        assert token not in log


def test_roles_on_a_repo(server: HerdServer, admin: tuple[str, Path], tmp_path: Path) -> None:
    admin = admin[0]
    herd(server, tmp_path, "create-repo", "shared", token=admin)  # its creator owns it
    assert herd(server, tmp_path, "auth", "set-role", "shared", "dave", "writer", token=admin).stdout.split() == [
        "USER", "ROLE", "admin", "owner", "dave", "writer"]
    dave = herd(server, tmp_path, "auth", "create-token", "dave", token=admin).stdout.strip()
    assert herd(server, tmp_path, "auth", "get-roles", "shared", token=dave).stdout.split()[4:] == ["dave", "writer"]
    # A writer is no owner: it cannot hand out roles
    denied = herd(server, tmp_path, "auth", "set-role", "shared", "eve", "owner", token=dave, code=11).stderr
    assert denied == ("error: user 'dave' needs the owner role on repo 'shared' (has writer): an owner of the "
                      "repo or an admin can grant it with herd auth set-role\n")
    assert herd(server, tmp_path, "auth", "set-role", "shared", "dave", "none", token=admin).stdout.split() == [
        "USER", "ROLE", "admin", "owner"]
    assert "not found" in herd(server, tmp_path, "auth", "get-roles", "nope", token=admin, code=2).stderr
    assert "invalid user name" in herd(server, tmp_path, "auth", "set-role", "shared", "a b", "reader",
                                       token=admin, code=4).stderr

