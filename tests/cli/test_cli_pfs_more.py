"""Issue 14's pfs verbs through the CLI, on a local folder and on moto's S3 server over HTTP:
copy-file, set-branch, delete-commit, subscribe-commit (a real `herd` child process),
list-commit -f/-n, list-branch order, reads of open commits and the `repo/commit` form."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from click.testing import CliRunner, Result

from scheduler.cli import cli
from scheduler.cli.context import expand_target
from tests.fixtures.s3 import FAKE_AWS_ENV, fresh_bucket

ROOT = Path(__file__).resolve().parents[2]
HERD = ROOT / ".venv" / "bin" / "herd"
USAGE = 64

Herd = Callable[..., Result]


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def env(request: pytest.FixtureRequest, tmp_path: Path, work: Path) -> dict[str, str]:
    """The storage settings of one backend: a local folder, or a fresh bucket on moto's server."""
    if request.param == "file":
        return {"HERD_STORAGE": f"file://{tmp_path / 'store'}"}
    server = request.getfixturevalue("moto_server")
    return {"HERD_STORAGE": f"s3://{fresh_bucket()}/herd", "HERD_S3_ENDPOINT_URL": str(server),
            **FAKE_AWS_ENV}


@pytest.fixture
def herd(env: dict[str, str]) -> Herd:
    runner = CliRunner(env=env)

    def run(*args: str, input: bytes | None = None, code: int = 0) -> Result:
        result = runner.invoke(cli, list(args), input=input)
        assert result.exit_code == code, (result.output, result.exception)
        return result

    return run


@pytest.fixture
def repo(herd: Herd) -> str:
    herd("create-repo", "data")
    herd("create-repo", "other")
    herd("put-file", "data", "master", "/a.txt", input=b"one")
    herd("put-file", "data", "master", "/dir/b.txt", input=b"two\n")
    return "data"


def fails(herd: Herd, code: int, *args: str) -> str:
    """A refused command: exit `code`, one `error:` line, nothing on stdout, no traceback."""
    result = herd(*args, code=code)
    assert result.stdout == "" and "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def usage(herd: Herd, *args: str) -> str:
    """A usage error: click's hint and its one `Error:` line, exit 64, nothing on stdout."""
    result = herd(*args, code=USAGE)
    assert result.stdout == "" and "Traceback" not in result.output
    return result.stderr.splitlines()[-1]


def state(herd: Herd) -> list[str]:
    """What a refused command must leave as it was: every repo's commits and branches."""
    out = []
    for name in ("data", "other"):
        out += [herd("list-commit", name, "--json").stdout, herd("list-branch", name, "--json").stdout]
    return out


def cid(herd: Herd, repo: str, ref: str) -> str:
    return str(json.loads(herd("inspect-commit", repo, ref, "--json").stdout)["commit"]["id"])


def ids(result: Result) -> list[str]:
    return [json.loads(line)["commit"]["id"] for line in result.stdout.splitlines()]


# --- the repo/commit form (pure) ------------------------------------------------------------


@pytest.mark.parametrize(("words", "expected"), [
    (["images/master"], ["images", "master"]),
    (["images/master", "/x/y"], ["images", "master", "/x/y"]),
    (["images@master:/x/y"], ["images", "master", "/x/y"]),
    (["images@dev=abc123:/a/b"], ["images", "abc123", "/a/b"]),
    (["images", "master", "/x"], ["images", "master", "/x"]),
    (["images/master^2"], ["images", "master^2"]),
])
def test_expand_target_forms(words: list[str], expected: list[str]) -> None:
    assert expand_target(words) == expected


_NAME = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)
_REF = st.from_regex(r"[A-Za-z0-9_-]{1,20}[\^~0-9]{0,3}", fullmatch=True)


@given(repo=_NAME, ref=_REF, rest=st.lists(st.text(min_size=1, max_size=8), max_size=2))
def test_repo_slash_commit_means_what_repo_at_commit_means(repo: str, ref: str, rest: list[str]) -> None:
    # the repo ends at the first '/' (1.8) as at the first '@' (1.9); later words stay as given
    assert expand_target([f"{repo}/{ref}", *rest]) == [repo, ref, *rest]
    assert expand_target([f"{repo}/{ref}", *rest]) == expand_target([f"{repo}@{ref}", *rest])


@pytest.mark.parametrize("word", ["images/master/x", "images/master@x", "images/master:/x"])
def test_repo_slash_commit_with_a_path_in_it_is_refused(word: str) -> None:
    import click

    with pytest.raises(click.UsageError, match="repo/commit"):
        expand_target([word])


def test_repo_slash_commit_on_commit_and_file_verbs(herd: Herd, repo: str) -> None:
    head = json.loads(herd("inspect-commit", "data", "master", "--json").stdout)
    assert json.loads(herd("inspect-commit", "data/master", "--json").stdout) == head
    assert herd("get-file", "data/master", "/a.txt").stdout == "one"
    assert herd("list-file", "data/master^", "--json").stdout == herd(
        "list-file", "data", "master^", "--json").stdout
    assert herd("flush-commit", "data/master", "--json").stdout == ""  # no pipelines downstream
    assert "repo/commit" in usage(herd, "get-file", "data/master/a.txt")


# --- copy-file ------------------------------------------------------------------------------


def test_copy_file_within_and_across_repos(herd: Herd, repo: str) -> None:
    herd("copy-file", "data", "master", "/a.txt", "data", "master", "/c.txt")
    assert herd("get-file", "data", "master", "/c.txt").stdout == "one"
    herd("copy-file", "data@master:/dir", "other@master:/in")
    assert herd("get-file", "other", "master", "/in/b.txt").stdout == "two\n"
    # onto an existing file: appended, as put-file; -o replaces
    herd("copy-file", "data/master", "/a.txt", "other/master", "/in/b.txt")
    assert herd("get-file", "other@master:/in/b.txt").stdout == "two\none"
    herd("copy-file", "-o", "data", "master", "/a.txt", "other", "master", "/in/b.txt")
    assert herd("get-file", "other@master:/in/b.txt").stdout == "one"


def test_copy_file_refusals_name_the_culprit_and_change_nothing(herd: Herd, repo: str) -> None:
    before = state(herd)
    assert "/nope" in fails(herd, 2, "copy-file", "data", "master", "/nope", "other", "master", "/x")
    head = [cid(herd, "data", "master")]
    assert head[0] in fails(herd, 5, "copy-file", "data", "master", "/a.txt", "data", head[0], "/x")
    assert "nope" in fails(herd, 2, "copy-file", "data", "master", "/a.txt", "nope", "master", "/x")
    usage(herd, "copy-file", "data", "master", "/a.txt", "other", "master")
    assert state(herd) == before


# --- set-branch, create-branch --head <open commit> -----------------------------------------


def test_set_branch_to_an_open_commit_then_put_file_on_the_branch(herd: Herd, repo: str) -> None:
    opened = herd("start-commit", "data", "master").stdout.strip()
    herd("set-branch", "data", opened, "staging")
    herd("put-file", "data", "staging", "/new.txt", input=b"new")
    # the file is in the open commit, readable by its id (1.9 reads open commits)
    assert herd("get-file", "data", opened, "/new.txt").stdout == "new"
    assert "/new.txt" in herd("list-file", "data", opened).stdout
    assert "/new.txt" in herd("glob-file", "data", opened, "/*").stdout
    herd("finish-commit", "data", "staging")
    for branch in ("master", "staging"):
        assert [cid(herd, "data", branch)] == [opened]
    assert herd("get-file", "data@staging:/new.txt").stdout == "new"


def test_create_branch_head_open_commit_and_set_branch_finished(herd: Herd, repo: str) -> None:
    first = [cid(herd, "data", "master^")][0]
    herd("set-branch", "data", first, "old")
    assert herd("list-file", "data", "old").stdout.count("\n") == 2  # header and /a.txt
    opened = herd("start-commit", "data", "master").stdout.strip()
    herd("create-branch", "data", "wip", "--head", opened)
    herd("put-file", "data", "wip", "/w", input=b"w")
    herd("finish-commit", "data", opened)
    assert [cid(herd, "data", "wip")] == [opened]


# --- delete-commit --------------------------------------------------------------------------


def test_delete_commit_of_a_head_moves_the_branch_back(herd: Herd, repo: str) -> None:
    parent, head = [cid(herd, "data", "master^")][0], [cid(herd, "data", "master")][0]
    herd("delete-commit", "data", head)
    assert [cid(herd, "data", "master")] == [parent]
    assert head in fails(herd, 2, "inspect-commit", "data", head)


def test_delete_commit_with_a_child_is_refused(herd: Herd, repo: str) -> None:
    parent = [cid(herd, "data", "master^")][0]
    before = state(herd)
    message = fails(herd, 5, "delete-commit", "data", parent)
    assert parent in message and "child" in message
    assert state(herd) == before


def test_delete_commit_discards_an_open_commit(herd: Herd, repo: str) -> None:
    opened = herd("start-commit", "data", "master").stdout.strip()
    herd("put-file", "data", opened, "/x", input=b"x")
    herd("delete-commit", "data/" + opened)
    assert opened in fails(herd, 2, "inspect-commit", "data", opened)
    herd("start-commit", "data", "master")  # the branch is free again


# --- list-commit -f / -n, list-branch -------------------------------------------------------


def test_list_commit_from_and_number(herd: Herd, repo: str) -> None:
    herd("put-file", "data", "master", "/c", input=b"c")
    history = ids(herd("list-commit", "data", "master", "--json"))
    assert ids(herd("list-commit", "data", "master", "-f", history[-1], "--json")) == history[:-1]
    assert ids(herd("list-commit", "data", "master", "--from", history[1], "-n", "5", "--json")) == history[:1]
    assert ids(herd("list-commit", "data", "-n", "2", "--json")) == history[:2]


def test_list_branch_newest_first(herd: Herd, repo: str) -> None:
    herd("put-file", "data", "zzz-old", "/x", input=b"x")
    herd("create-branch", "data", "empty")
    herd("put-file", "data", "aaa-new", "/x", input=b"x")
    names = [line.split()[0] for line in herd("list-branch", "data").stdout.splitlines()[1:]]
    assert names == ["aaa-new", "zzz-old", "master", "empty"]
    raw = [json.loads(line)["branch"]["name"] for line in herd("list-branch", "data", "--json").stdout.splitlines()]
    assert raw == names


# --- subscribe-commit (a real child process) ------------------------------------------------


def test_subscribe_commit_new_prints_only_commits_finished_after_it_starts(
    herd: Herd, repo: str, env: dict[str, str], work: Path,
) -> None:
    before = set(ids(herd("list-commit", "data", "--json")))
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_"))}
    child_env.update(env, HERD_RUNTIME="local")
    proc = subprocess.Popen([str(HERD), "subscribe-commit", "data", "master", "--new", "-n", "2",
                             "--interval", "0.05"], env=child_env, cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        made: list[str] = []
        # Keep committing until it has seen two: it may start looking after the first ones.
        while proc.poll() is None and len(made) < 200:
            made.append(json.loads(herd("put-file", "data", "master", f"/n{len(made)}", input=b"n")
                                   and herd("inspect-commit", "data", "master", "--json").stdout)
                        ["commit"]["id"])
            time.sleep(0.1)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    printed = out.decode().split()
    assert proc.returncode == 0, err.decode()
    assert len(printed) == 2 and not set(printed) & before
    assert set(printed) <= set(made)
    assert made.index(printed[0]) < made.index(printed[1])  # oldest first


def test_subscribe_commit_without_new_starts_with_the_history(herd: Herd, repo: str) -> None:
    history = ids(herd("list-commit", "data", "master", "--json"))
    out = herd("subscribe-commit", "data", "master", "-n", "2").stdout.split()
    assert out == history[::-1]
    raw = herd("subscribe-commit", "data", "master", "--from", history[-1], "-n", "1", "--json")
    assert ids(raw) == history[:1]
    usage(herd, "subscribe-commit", "data", "master", "--new", "--from", history[0])
    assert "nope" in fails(herd, 2, "subscribe-commit", "nope", "master", "-n", "1")


# --- crashes (the console script killed at a failpoint, exit 137) ---------------------------


def _crash(env: dict[str, str], work: Path, failpoint: str, *args: str) -> None:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_"))}
    child_env.update(env, HERD_RUNTIME="local", HERD_FAILPOINTS=failpoint)
    proc = subprocess.run([str(HERD), *args], env=child_env, cwd=work, capture_output=True,
                          timeout=120)
    assert proc.returncode == 137, proc.stderr.decode()


def test_finish_killed_before_moving_a_follower_is_completed_by_the_next_command(
    herd: Herd, repo: str, env: dict[str, str], work: Path,
) -> None:
    opened = herd("start-commit", "data", "master").stdout.strip()
    herd("set-branch", "data", opened, "staging")
    herd("put-file", "data", "staging", "/s", input=b"s")
    _crash(env, work, "finish-commit.after_branch", "finish-commit", "data", opened)
    # the next command that names the follower finishes the job: it points at the commit
    assert cid(herd, "data", "staging") == opened == cid(herd, "data", "master")
    raw = [json.loads(line) for line in herd("list-branch", "data", "--json").stdout.splitlines()]
    assert {b["branch"]["name"]: b["head"]["id"] for b in raw} == {"master": opened, "staging": opened}
    assert ids(herd("list-commit", "data", "master", "-n", "1", "--json")) == [opened]
    herd("start-commit", "data", "staging")  # no claim is left on it


def test_delete_commit_killed_after_moving_the_branch_is_finished_by_running_it_again(
    herd: Herd, repo: str, env: dict[str, str], work: Path,
) -> None:
    parent, head = cid(herd, "data", "master^"), cid(herd, "data", "master")
    _crash(env, work, "delete-commit.after_branches", "delete-commit", "data", head)
    assert cid(herd, "data", "master") == parent  # the branch moved: the commit is unreachable
    herd("delete-commit", "data", head)
    assert head in fails(herd, 2, "inspect-commit", "data", head)
    assert ids(herd("list-commit", "data", "--json")) == [parent]
