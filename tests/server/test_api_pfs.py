"""Repos, branches and commits through `herd serve`: the same output and errors as on storage
directly, and storage never touched by the client."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.fixtures.server import HerdServer

ID = re.compile(r"\b[0-9a-f]{32}\b")


def test_repo_verbs_print_what_they_print_locally(remote, local, tmp_path: Path) -> None:
    remote("create-repo", "photos", "-d", "holiday")
    assert remote("list-repo", "--json").stdout == local("list-repo", "--json").stdout
    assert remote("list-repo").stdout.split()[:4] == ["NAME", "CREATED", "SIZE", "photos"]
    assert json.loads(remote("inspect-repo", "photos", "--raw").stdout) == json.loads(
        local("inspect-repo", "photos", "--raw").stdout)
    assert not (tmp_path / "not-used").exists()  # the client's own HERD_STORAGE was never opened


def test_errors_keep_their_line_and_exit_code(remote, local) -> None:
    for args, code in ((("inspect-repo", "nope"), 2), (("create-repo", "bad name"), 4),
                       (("inspect-commit", "nope@master"), 2)):
        through, direct = remote(*args, code=code), local(*args, code=code)
        assert through.stderr == direct.stderr and through.stderr.startswith("error: ")
    remote("create-repo", "twice")
    assert remote("create-repo", "twice", code=3).stderr == "error: repo 'twice' already exists\n"


def test_commits_and_branches(remote, local) -> None:
    remote("create-repo", "data")
    commit = remote("start-commit", "data", "master").stdout.strip()
    assert ID.fullmatch(commit)
    remote("finish-commit", "data", commit, "-m", "first")
    second = remote("start-commit", "data", "master").stdout.strip()
    remote("finish-commit", "data", second)
    remote("create-branch", "data", "old", "--head", commit)
    # (JSON, not tables: a table's "N seconds ago" may tick between the two runs)
    for verb in (("list-commit", "data", "--json"), ("list-branch", "data", "--raw"),
                 ("inspect-commit", "data@master^", "--json"), ("list-commit", "data", "master", "-n", "1", "--raw")):
        assert remote(*verb).stdout == local(*verb).stdout
    remote("set-branch", "data", second, "old")
    assert json.loads(local("list-branch", "data", "--json").stdout.splitlines()[0])["head"]["id"] == second
    remote("delete-branch", "data", "old")
    assert "old" not in local("list-branch", "data").stdout


def test_the_api_answers_json_errors_with_http_statuses(herd_server: HerdServer) -> None:
    with httpx.Client(base_url=herd_server.url + "/api/v1") as http:
        missing = http.get("/repos/nope")
        assert missing.status_code == 404
        assert missing.json() == {"error": {"type": "RepoNotFound", "category": "not_found",
                                            "message": "repo 'nope' not found", "exit_code": 2}}
        bad = http.post("/repos", json={"name": "a/b"})
        assert bad.status_code == 422 and bad.json()["error"]["type"] == "InvalidName"
        malformed = http.post("/repos", json={"description": 3})
        assert malformed.status_code == 422 and "'name'" in malformed.json()["error"]["message"]
        assert http.post("/repos", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
        http.post("/repos", json={"name": "dup"})
        assert http.post("/repos", json={"name": "dup"}).status_code == 409
        assert http.get("/repos/dup/commits", params={"limit": 0}).status_code == 422


def test_a_server_that_does_not_answer_is_an_outage_naming_it(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from scheduler.cli import cli
    from tests.fixtures.services import free_port

    address = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli, ["list-repo"], env={"HERD_ADDRESS": address})
    assert result.exit_code == 6
    assert result.stderr.startswith(f"error: herd server at {address} does not answer")


def test_verbs_that_work_on_storage_itself_refuse_a_server_address() -> None:
    from click.testing import CliRunner

    from scheduler.cli import cli

    for verb in (["fsck"], ["garbage-collect", "--dry-run"], ["scheduler"], ["worker"], ["serve"], ["run-cron", "--once"]):
        result = CliRunner().invoke(cli, verb, env={"HERD_ADDRESS": "http://127.0.0.1:9"})
        assert result.exit_code == 1, (verb, result.output)
        assert result.stderr == (f"error: herd {verb[0]} works on storage itself, which the herd server at "
                                 "http://127.0.0.1:9 holds: run it where HERD_STORAGE is set, with HERD_ADDRESS unset\n")
