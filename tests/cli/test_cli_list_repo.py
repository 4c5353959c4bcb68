"""list-repo's SIZE is pachctl's: the logical size of the repo's master head, the very number
list-commit and inspect-commit show for that commit (not the distinct bytes of every branch)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from scheduler.cli import cli


def _herd(store: Path):
    runner = CliRunner(env={"HERD_STORAGE": f"file://{store}"})

    def run(*args: str, input: bytes | None = None) -> Result:
        result = runner.invoke(cli, list(args), input=input)
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    return run


def _raw_lines(result: Result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_list_repo_size_is_master_heads_logical_size(tmp_path: Path) -> None:
    # Given master with one content stored twice (deduplicated in storage) and a larger dev branch
    herd = _herd(tmp_path / "store")
    herd("create-repo", "data")
    herd("create-repo", "empty")
    herd("put-file", "data", "master", "/a", input=b"12345")
    herd("put-file", "data", "master", "/b", input=b"12345")
    herd("put-file", "data", "dev", "/big", input=b"x" * 1000)
    # When list-repo and list-commit are asked, as JSON and as tables
    repos = {info["repo"]["name"]: info for info in _raw_lines(herd("list-repo", "--json"))}
    head = json.loads(herd("inspect-commit", "data", "master", "--json").stdout)
    # Then data's size is master's head's (both copies counted, dev not), the empty repo's 0
    assert repos["data"]["size_bytes"] == head["size_bytes"] == 10
    assert repos["empty"]["size_bytes"] == 0
    table = {line.split()[0]: line.split()[-1] for line in herd("list-repo").stdout.splitlines()[1:]}
    newest = herd("list-commit", "data", "master").stdout.splitlines()[1].split()[-1]
    assert table["data"] == newest == "10B" and table["empty"] == "0B"


def test_list_repo_size_follows_master_not_other_branches(tmp_path: Path) -> None:
    # Given a repo whose only commits are on dev, and then master's file deleted
    herd = _herd(tmp_path / "store")
    herd("create-repo", "data")
    herd("put-file", "data", "dev", "/a", input=b"abc")
    assert _raw_lines(herd("list-repo", "--json"))[0]["size_bytes"] == 0
    herd("put-file", "data", "master", "/a", input=b"abcdef")
    assert _raw_lines(herd("list-repo", "--json"))[0]["size_bytes"] == 6
    herd("delete-file", "data", "master", "/a")
    # Then the repo's size is that of master's new (empty) head
    assert _raw_lines(herd("list-repo", "--json"))[0]["size_bytes"] == 0
    assert json.loads(herd("inspect-repo", "data", "--json").stdout)["size_bytes"] == 0
