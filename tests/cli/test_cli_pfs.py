"""The data verbs through herd's real entry points: click's runner on `scheduler.cli:cli`, and
the installed `herd` console script in a child process (local folder and moto S3 storage).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from scheduler.cli import cli
from tests.fixtures.s3 import FAKE_AWS_ENV, fresh_bucket
from tests.fixtures.services import free_port

ROOT = Path(__file__).resolve().parents[2]
HERD = ROOT / ".venv" / "bin" / "herd"
ID_LEN = 32

Herd = Callable[..., Result]


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"



@pytest.fixture
def herd(store: Path, work: Path) -> Herd:
    """Run one herd command in-process; asserts success unless `code=` says otherwise."""
    runner = CliRunner(env={"HERD_STORAGE": f"file://{store}"})

    def run(*args: str, input: bytes | str | None = None, code: int = 0) -> Result:
        result = runner.invoke(cli, list(args), input=input)
        assert result.exit_code == code, (result.output, result.exception)
        return result

    return run


def fails(herd: Herd, code: int, *args: str, input: bytes | None = None) -> str:
    """Run a command that must fail: exit `code`, one `error:` line, no traceback, no stdout."""
    result = herd(*args, input=input, code=code)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def snapshot(store: Path) -> dict[str, bytes]:
    """Every object in the local store, to prove that a refused command changed nothing."""
    return {str(p.relative_to(store)): p.read_bytes()
            for p in sorted(store.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def lines(result: Result) -> list[str]:
    return result.stdout.splitlines()


def raw_lines(result: Result) -> list[dict]:
    return [json.loads(line) for line in lines(result)]


def column(result: Result, index: int) -> list[str]:
    """One column of a table, header excluded."""
    return [line.split()[index] for line in lines(result)[1:]]


@pytest.fixture
def repo(herd: Herd) -> str:
    """A repo whose master holds /a.txt ('one') and /dir/b.txt ('two\\n'), in two commits."""
    herd("create-repo", "data", "-d", "test data")
    herd("put-file", "data", "master", "/a.txt", "-f", "-", input=b"one")
    herd("put-file", "data", "master", "/dir/b.txt", input=b"two\n")
    return "data"


# --- repos ----------------------------------------------------------------------------------


def test_repo_lifecycle_with_table_and_raw(herd: Herd) -> None:
    # Given a new repo
    herd("create-repo", "images", "-d", "pictures")
    # Then list-repo shows NAME CREATED SIZE, human sizes and relative times
    table = herd("list-repo")
    assert lines(table)[0].split() == ["NAME", "CREATED", "SIZE"]
    assert lines(table)[1].startswith("images")
    assert "ago" in lines(table)[1] and lines(table)[1].endswith("0B")
    # And --json uses snake_case field names with exact numbers and RFC 3339 times
    (raw,) = raw_lines(herd("list-repo", "--json"))
    assert raw["repo"] == {"name": "images"}
    assert raw["size_bytes"] == 0 and raw["description"] == "pictures"
    assert raw["created"].endswith("Z") and "T" in raw["created"]
    inspected = json.loads(herd("inspect-repo", "images", "--json").stdout)
    assert inspected["repo"] == {"name": "images"}
    assert "Name: images" in herd("inspect-repo", "images").stdout
    # When it is deleted, it is gone
    herd("delete-repo", "images")
    assert lines(herd("list-repo")) == ["NAME   CREATED   SIZE"]


def test_repo_size_counts_file_bytes(herd: Herd, repo: str) -> None:
    (raw,) = raw_lines(herd("list-repo", "--json"))
    assert raw["size_bytes"] == 7
    assert lines(herd("list-repo"))[1].split()[-1] == "7B"


def test_invalid_repo_name_is_refused_and_nothing_is_written(herd: Herd, store: Path) -> None:
    herd("create-repo", "ok")
    before = snapshot(store)
    message = fails(herd, 4, "create-repo", "bad/name")
    assert "bad/name" in message
    assert snapshot(store) == before


def test_existing_repo_is_refused_naming_it(herd: Herd, store: Path) -> None:
    herd("create-repo", "images", "-d", "first")
    before = snapshot(store)
    assert "images" in fails(herd, 3, "create-repo", "images", "-d", "second")
    assert snapshot(store) == before


def test_delete_repo_with_commits_needs_force(herd: Herd, repo: str, store: Path) -> None:
    before = snapshot(store)
    message = fails(herd, 5, "delete-repo", repo)
    assert repo in message and "--force" in message
    assert snapshot(store) == before
    herd("delete-repo", repo, "--force")
    fails(herd, 2, "inspect-repo", repo)


@pytest.mark.parametrize(
    ("args", "culprit"),
    [
        (("inspect-repo", "nope"), "nope"),
        (("list-commit", "nope"), "nope"),
        (("list-commit", "data", "nobranch"), "nobranch"),
        (("inspect-commit", "data", "0123456789abcdef0123456789abcdef"), "0123456789abcdef"),
        (("list-file", "data", "nobranch"), "nobranch"),
        (("get-file", "data", "master", "/missing.txt"), "/missing.txt"),
        (("delete-branch", "data", "nobranch"), "nobranch"),
        (("delete-repo", "nope"), "nope"),
    ],
)
def test_missing_objects_exit_2_naming_them(
    herd: Herd, repo: str, store: Path, args: tuple[str, ...], culprit: str
) -> None:
    before = snapshot(store)
    assert culprit in fails(herd, 2, *args)
    assert snapshot(store) == before


# --- commits --------------------------------------------------------------------------------


def test_start_put_finish_commit(herd: Herd) -> None:
    herd("create-repo", "r")
    # Given an open commit: start-commit prints the id and nothing else
    out = herd("start-commit", "r", "master", "-m", "batch one").stdout
    commit = out.strip()
    assert out == commit + "\n" and len(commit) == ID_LEN
    # When files are put into it by id, readers do not see them until it is finished
    herd("put-file", "r", commit, "/x.txt", input=b"x")
    herd("put-file", "r", "master", "/y.txt", input=b"y")  # the branch's open commit
    assert raw_lines(herd("list-commit", "r", "--json"))[0]["finished"] is None
    herd("finish-commit", "r", commit)
    # Then one commit holds both files, with its description
    assert column(herd("list-file", "r", "master"), 0) == ["/x.txt", "/y.txt"]
    (raw,) = raw_lines(herd("list-commit", "r", "--json"))
    assert raw["commit"]["id"] == commit and raw["description"] == "batch one"


def test_writing_to_a_finished_commit_is_refused(herd: Herd, repo: str, store: Path) -> None:
    commit = raw_lines(herd("list-commit", repo, "--json"))[0]["commit"]["id"]
    before = snapshot(store)
    message = fails(herd, 5, "put-file", repo, commit, "/new.txt", input=b"x")
    assert commit in message and "finished" in message
    assert snapshot(store) == before


def test_list_commit_newest_first_with_columns_and_limit(herd: Herd, repo: str) -> None:
    result = herd("list-commit", repo)
    assert lines(result)[0].split() == ["REPO", "COMMIT", "PARENT", "STARTED", "DURATION", "SIZE"]
    newest, oldest = raw_lines(herd("list-commit", repo, "--json"))
    assert newest["parent_commit"] == oldest["commit"]
    assert oldest["parent_commit"] is None
    assert column(result, 1) == [newest["commit"]["id"], oldest["commit"]["id"]]
    assert column(result, 2)[1] == "<none>"
    assert lines(result)[1].endswith("7B")
    limited = herd("list-commit", repo, "master", "-n", "1")
    assert column(limited, 1) == [newest["commit"]["id"]]


def test_inspect_commit_human_and_raw(herd: Herd, repo: str) -> None:
    text = herd("inspect-commit", repo, "master").stdout
    newest, oldest = raw_lines(herd("list-commit", repo, "--json"))
    assert f"Commit: {repo}@{newest['commit']['id']}" in text
    for label in ("Original Branch: master", f"Parent: {oldest['commit']['id']}",
                  "Started:", "Finished:", "Size: 7B", "Provenance: <none>"):
        assert label in text
    raw = json.loads(herd("inspect-commit", repo, "master^", "--json").stdout)
    assert set(raw) >= {"commit", "branch", "parent_commit", "started", "finished",
                        "size_bytes", "description", "provenance"}
    assert raw["commit"] == {"repo": {"name": repo}, "id": oldest["commit"]["id"]}
    assert raw["branch"] == {"repo": {"name": repo}, "name": "master"}
    assert raw["size_bytes"] == 3 and raw["provenance"] == []


def test_inspect_commit_shows_provenance_and_failure(herd: Herd, repo: str, store: Path) -> None:
    # Given an output-style commit written by the porcelain with provenance and a failure
    from storage.local import LocalObjectStore
    from storage.model import Manifest
    from storage.repos import Pfs

    pfs = Pfs(LocalObjectStore(store))
    source = pfs.inspect_commit(repo, "master")
    herd("create-repo", "out")
    pfs.write_commit("out", "master", Manifest(), provenance=(source.ref,),
                     failed_reason="datum 1a2b failed")
    # Then inspect-commit shows both, in text and in --raw
    text = herd("inspect-commit", "out", "master").stdout
    assert f"Provenance: {repo}@{source.id} (master)" in text
    assert text.splitlines()[-1] == "Failed: datum 1a2b failed"
    raw = json.loads(herd("inspect-commit", "out", "master", "--json").stdout)
    assert raw["provenance"] == [{"commit": {"repo": {"name": repo}, "id": source.id},
                                  "branch": {"repo": {"name": repo}, "name": "master"}}]
    assert raw["error"] == "datum 1a2b failed"


def test_repo_at_ref_forms(herd: Herd, repo: str) -> None:
    assert "Commit: data@" in herd("inspect-commit", "data@master").stdout
    assert herd("get-file", "data@master:/dir/b.txt").stdout == "two\n"
    assert column(herd("list-file", "data@master:/dir"), 0) == ["/dir/b.txt"]
    herd("put-file", "data@master:/c.txt", input=b"c")
    assert herd("get-file", "data", "master", "/c.txt").stdout == "c"


# --- branches -------------------------------------------------------------------------------


def test_branches(herd: Herd, repo: str) -> None:
    oldest = raw_lines(herd("list-commit", repo, "--json"))[-1]["commit"]["id"]
    herd("create-branch", repo, "stable", "--head", oldest)
    table = herd("list-branch", repo)
    assert lines(table)[0].split() == ["BRANCH", "HEAD"]
    assert dict(line.split() for line in lines(table)[1:])["stable"] == oldest
    raw = {b["branch"]["name"]: b for b in raw_lines(herd("list-branch", repo, "--json"))}
    assert raw["stable"]["head"] == {"repo": {"name": repo}, "id": oldest}
    assert raw["stable"]["branch"] == {"repo": {"name": repo}, "name": "stable"}
    assert column(herd("list-file", repo, "stable"), 0) == ["/a.txt"]
    herd("delete-branch", repo, "stable")
    assert column(herd("list-branch", repo), 0) == ["master"]


# --- put-file -------------------------------------------------------------------------------


def test_put_file_from_stdin_needs_a_path(herd: Herd, repo: str, store: Path) -> None:
    before = snapshot(store)
    assert "PATH" in fails(herd, 4, "put-file", repo, "master", "-f", "-", input=b"x")
    assert snapshot(store) == before


def test_put_file_overwrites_by_default_and_appends_with_a(herd: Herd, repo: str) -> None:
    herd("put-file", repo, "master", "/a.txt", "-o", input=b"ONE")
    assert herd("get-file", repo, "master", "/a.txt").stdout == "ONE"
    herd("put-file", repo, "master", "/a.txt", "-a", input=b"+more")
    assert herd("get-file", repo, "master", "/a.txt").stdout == "ONE+more"


def test_put_file_without_path_uses_the_source_path(herd: Herd, work: Path) -> None:
    herd("create-repo", "r")
    (work / "sub").mkdir()
    (work / "sub" / "f.txt").write_bytes(b"f")
    herd("put-file", "r", "master", "-f", "sub/f.txt")
    assert column(herd("list-file", "r", "master", "/sub"), 0) == ["/sub/f.txt"]


def test_put_file_several_sources_use_path_as_a_prefix(herd: Herd, work: Path) -> None:
    herd("create-repo", "r")
    for name in ("x.txt", "y.txt"):
        (work / name).write_text(name)
    herd("put-file", "r", "master", "/in", "-f", "x.txt", "-f", "y.txt")
    assert column(herd("list-file", "r", "master", "/in"), 0) == ["/in/x.txt", "/in/y.txt"]
    assert len(raw_lines(herd("list-commit", "r", "--json"))) == 1


def test_put_file_recursive_folder_is_one_commit(herd: Herd, work: Path) -> None:
    herd("create-repo", "r")
    for rel in ("top.txt", "deep/er/leaf.txt", "deep/other.bin"):
        (work / "tree" / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / "tree" / rel).write_text(rel)
    herd("put-file", "r", "master", "/imported", "-r", "-f", "tree")
    files = column(herd("glob-file", "r", "master", "/imported/**"), 0)
    assert [f for f in files if f.endswith((".txt", ".bin"))] == [
        "/imported/deep/er/leaf.txt", "/imported/deep/other.bin", "/imported/top.txt"]
    assert len(raw_lines(herd("list-commit", "r", "--json"))) == 1
    # Without PATH the folder keeps the name it was given by
    herd("put-file", "r", "master", "-r", "-f", "tree")
    assert herd("get-file", "r", "master", "/tree/deep/er/leaf.txt").stdout == "deep/er/leaf.txt"


def test_put_file_folder_without_r_is_refused(herd: Herd, work: Path, store: Path) -> None:
    herd("create-repo", "r")
    (work / "tree").mkdir()
    (work / "tree" / "f").write_text("f")
    before = snapshot(store)
    message = fails(herd, 4, "put-file", "r", "master", "-f", "tree")
    assert "'tree'" in message and "-r" in message
    assert snapshot(store) == before


def test_missing_local_source_is_named_and_nothing_changes(
    herd: Herd, repo: str, work: Path, store: Path
) -> None:
    (work / "here.txt").write_text("here")
    before = snapshot(store)
    message = fails(herd, 2, "put-file", repo, "master", "/d", "-f", "here.txt", "-f", "gone.txt")
    assert "gone.txt" in message
    assert snapshot(store) == before


def test_path_with_dotdot_is_refused(herd: Herd, repo: str, store: Path) -> None:
    before = snapshot(store)
    assert "../x" in fails(herd, 4, "put-file", repo, "master", "../x", input=b"x")
    assert "/a/../b" in fails(herd, 4, "put-file", repo, "master", "/a/../b", input=b"x")
    assert snapshot(store) == before


def test_append_and_overwrite_together_are_refused(herd: Herd, repo: str) -> None:
    assert "--append" in fails(herd, 4, "put-file", repo, "master", "/a.txt", "-a", "-o",
                               input=b"x")


@pytest.fixture
def http_files(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a folder: (base URL, folder)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


def test_put_file_from_http(herd: Herd, repo: str, http_files: tuple[str, Path]) -> None:
    base, folder = http_files
    (folder / "remote.csv").write_bytes(b"a,b\n1,2\n")
    herd("put-file", repo, "master", "/from-web.csv", "-f", f"{base}/remote.csv")
    assert herd("get-file", repo, "master", "/from-web.csv").stdout == "a,b\n1,2\n"
    # Without PATH a URL's path names the file
    herd("put-file", repo, "master", "-f", f"{base}/remote.csv")
    assert herd("get-file", repo, "master", "/remote.csv").stdout == "a,b\n1,2\n"


def test_put_file_http_404_names_the_url(
    herd: Herd, repo: str, http_files: tuple[str, Path], store: Path
) -> None:
    base, _ = http_files
    before = snapshot(store)
    assert f"{base}/nothing.csv" in fails(herd, 2, "put-file", repo, "master", "/x",
                                          "-f", f"{base}/nothing.csv")
    assert snapshot(store) == before


# --- reading files --------------------------------------------------------------------------


def test_get_file_to_stdout_and_to_local_paths(herd: Herd, repo: str, work: Path) -> None:
    assert herd("get-file", repo, "master", "/dir/b.txt").stdout_bytes == b"two\n"
    herd("get-file", repo, "master", "/a.txt", "-o", "out/a.txt")
    assert (work / "out" / "a.txt").read_bytes() == b"one"
    herd("get-file", repo, "master", "/", "-r", "-o", "copy")
    assert sorted(p.relative_to(work / "copy").as_posix()
                  for p in (work / "copy").rglob("*") if p.is_file()) == ["a.txt", "dir/b.txt"]


def test_get_file_directory_needs_r_and_o(herd: Herd, repo: str) -> None:
    assert "-o" in fails(herd, 4, "get-file", repo, "master", "/dir", "-r")
    assert "/dir" in fails(herd, 4, "get-file", repo, "master", "/dir")


def test_list_file_table_and_raw(herd: Herd, repo: str) -> None:
    table = herd("list-file", repo, "master")
    assert lines(table) == ["NAME     TYPE   SIZE", "/a.txt   file   3B", "/dir     dir    4B"]
    raw = raw_lines(herd("list-file", repo, "master", "--json"))
    commit = raw_lines(herd("list-commit", repo, "--json"))[0]["commit"]
    assert raw[0] == {"file": {"commit": commit, "path": "/a.txt"}, "file_type": "FILE",
                      "size_bytes": 3, "hash": raw[0]["hash"]}
    assert len(raw[0]["hash"]) == 64
    assert raw[1]["file_type"] == "DIR" and raw[1]["size_bytes"] == 4


def test_glob_file_matches_files_and_directories(herd: Herd, repo: str) -> None:
    assert column(herd("glob-file", repo, "master", "/*"), 0) == ["/a.txt", "/dir"]
    assert column(herd("glob-file", repo, "master", "/dir/*"), 0) == ["/dir/b.txt"]
    assert column(herd("glob-file", repo, "master", "/"), 0) == ["/"]
    (raw,) = raw_lines(herd("glob-file", repo, "master", "/d*", "--json"))
    assert raw["file"]["path"] == "/dir" and raw["file_type"] == "DIR"
    assert lines(herd("glob-file", repo, "master", "/nothing*")) == ["NAME   TYPE   SIZE"]


def test_bad_glob_is_refused(herd: Herd, repo: str) -> None:
    assert "[" in fails(herd, 4, "glob-file", repo, "master", "/[a")


def test_inspect_file(herd: Herd, repo: str) -> None:
    text = herd("inspect-file", repo, "master", "/dir/b.txt").stdout
    assert text.splitlines()[:3] == ["Path: /dir/b.txt", "Type: file", "Size: 4B"]
    raw = json.loads(herd("inspect-file", repo, "master", "/dir", "--json").stdout)
    assert raw["file"]["path"] == "/dir" and raw["file_type"] == "DIR"
    assert raw["file"]["commit"]["repo"] == {"name": repo}


def test_diff_file_against_parent_and_given_ref(herd: Herd, repo: str) -> None:
    herd("put-file", repo, "master", "/a.txt", input=b"changed")
    herd("delete-file", repo, "master", "/dir/b.txt")
    # The default old side is the parent: only the delete
    assert lines(herd("diff-file", repo, "master")) == ["STATUS    PATH", "deleted   /dir/b.txt"]
    diff = herd("diff-file", repo, "master", "/", repo, "master~2", "/")  # pachctl's order
    assert lines(diff) == ["STATUS     PATH", "modified   /a.txt", "deleted    /dir/b.txt"]
    raw = json.loads(herd("diff-file", f"{repo}@master:/", "master~3", "--json").stdout)
    assert raw == {"added": [], "modified": ["/a.txt"], "deleted": []}
    raw = json.loads(herd("diff-file", "data@master:/dir", "master^^", "--json").stdout)
    assert raw == {"added": [], "modified": [], "deleted": ["/dir/b.txt"]}


def test_delete_file_makes_a_commit(herd: Herd, repo: str) -> None:
    herd("delete-file", repo, "master", "/dir")
    assert column(herd("list-file", repo, "master"), 0) == ["/a.txt"]
    assert len(raw_lines(herd("list-commit", repo, "--json"))) == 3
    assert "/dir" in fails(herd, 2, "delete-file", repo, "master", "/dir")


# --- progress and usage ---------------------------------------------------------------------


def test_progress_paths_move_the_same_bytes(
    herd: Herd, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a terminal (progress forced on), put and get a folder and a single file
    from scheduler.cli import progress

    monkeypatch.setattr(progress, "wanted", lambda total, many=False: True)
    herd("create-repo", "r")
    (work / "tree" / "sub").mkdir(parents=True)
    (work / "tree" / "sub" / "big.bin").write_bytes(os.urandom(300_000))
    (work / "tree" / "small.txt").write_text("s")
    herd("put-file", "r", "master", "/t", "-r", "-f", "tree")
    herd("get-file", "r", "master", "/t", "-r", "-o", "back")
    herd("get-file", "r", "master", "/t/sub/big.bin", "-o", "one.bin")
    # Then every byte arrives unchanged
    assert (work / "back" / "sub" / "big.bin").read_bytes() == (
        work / "tree" / "sub" / "big.bin").read_bytes()
    assert (work / "back" / "small.txt").read_text() == "s"
    assert (work / "one.bin").read_bytes() == (work / "tree" / "sub" / "big.bin").read_bytes()


def test_wrong_word_count_is_a_usage_error(herd: Herd) -> None:
    result = herd("get-file", "data", code=64)
    assert "REPO REF PATH" in result.stderr


def test_help_lists_every_data_verb(herd: Herd) -> None:
    text = herd("--help").stdout
    for verb in ("create-repo", "list-repo", "inspect-repo", "delete-repo", "start-commit",
                 "finish-commit", "list-commit", "inspect-commit", "create-branch",
                 "list-branch", "delete-branch", "put-file", "get-file", "list-file",
                 "glob-file", "inspect-file", "diff-file", "delete-file"):
        assert verb in text


# --- the installed console script -----------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HERD_", "AWS_"))}
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path, input: bytes | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(HERD), *args], env=env, cwd=cwd, input=input,
                          capture_output=True, timeout=timeout)


def _assert_one_line_error(proc: subprocess.CompletedProcess[bytes], code: int) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert b"Traceback" not in proc.stderr
    return err


def test_console_script_round_trip_on_a_local_folder(tmp_path: Path, work: Path) -> None:
    env = _env(HERD_STORAGE=f"file://{tmp_path / 'cs'}")
    assert _run(["create-repo", "r"], env, work).returncode == 0
    assert _run(["put-file", "r", "master", "/f.bin"], env, work, input=b"\x00\x01").returncode == 0
    got = _run(["get-file", "r", "master", "/f.bin"], env, work)
    assert got.returncode == 0 and got.stdout == b"\x00\x01"
    err = _assert_one_line_error(_run(["create-repo", "r"], env, work), 3)
    assert "'r'" in err
    _assert_one_line_error(_run(["inspect-commit", "r", "nobranch"], env, work), 2)


def test_console_script_does_not_import_boto3_for_local_storage(tmp_path: Path) -> None:
    code = ("import sys\nfrom scheduler.cli import main\n"
            "try:\n    main(['list-repo'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "assert 'boto3' not in sys.modules, 'boto3 imported'\n")
    env = _env(HERD_STORAGE=f"file://{tmp_path / 'cs'}")
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()


def test_progress_bar_on_a_terminal_only(tmp_path: Path, work: Path) -> None:
    # Given a file over the progress threshold
    env = _env(HERD_STORAGE=f"file://{tmp_path / 'cs'}", COLUMNS="100")
    assert _run(["create-repo", "r"], env, work).returncode == 0
    big = work / "big.bin"
    big.write_bytes(os.urandom(6 * 1024 * 1024))
    # When it is put with stderr in a pipe, stderr stays empty
    piped = _run(["put-file", "r", "master", "/big.bin", "-f", "big.bin"], env, work)
    assert piped.returncode == 0 and piped.stderr == b""
    # And with stderr on a terminal, a bar is drawn there (and nothing goes to stdout)
    primary, secondary = os.openpty()
    proc = subprocess.Popen([str(HERD), "put-file", "r", "master", "/again.bin", "-f", "big.bin"],
                            env=env, cwd=work, stdout=subprocess.PIPE, stderr=secondary)
    os.close(secondary)
    drawn = _drain(primary)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out == b""
    assert b"put r@master" in drawn


def _drain(fd: int) -> bytes:
    """Everything written to a pty until its last writer closes it."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def test_ctrl_c_exits_130_with_one_line(tmp_path: Path, work: Path) -> None:
    # Given put-file blocked reading an open stdin pipe
    env = _env(HERD_STORAGE=f"file://{tmp_path / 'cs'}")
    assert _run(["create-repo", "r"], env, work).returncode == 0
    proc = subprocess.Popen([str(HERD), "put-file", "r", "master", "/x"], env=env, cwd=work,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_blocked_on_pipe(proc.pid)
        # When it is interrupted
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Then it exits 130 with one line and no traceback
    assert proc.returncode == 130, err.decode()
    assert err.decode().splitlines() == ["error: interrupted"]


def _wait_blocked_on_pipe(pid: int, timeout: float = 20.0) -> None:
    """Until the process sleeps in a pipe read (Linux wchan), so SIGINT lands in the command."""
    wchan = Path(f"/proc/{pid}/wchan")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if "pipe" in wchan.read_text():
                time.sleep(0.1)
                return
        except OSError:
            break  # no /proc: fall back to a generous pause
        time.sleep(0.05)
    time.sleep(2.0)


@pytest.mark.s3
def test_console_script_on_moto_s3(moto_server: object, tmp_path: Path, work: Path) -> None:
    # Given HERD_STORAGE on a fresh bucket of moto's S3 server
    env = _env(HERD_STORAGE=f"s3://{fresh_bucket()}/herd",
               AWS_ENDPOINT_URL=str(moto_server), **FAKE_AWS_ENV)
    (work / "tree").mkdir()
    (work / "tree" / "a.txt").write_text("a")
    (work / "tree" / "b.txt").write_text("bb")
    # And an object in another bucket, to put by its s3:// URL
    from storage.s3 import S3ObjectStore

    source_bucket = fresh_bucket()
    S3ObjectStore(source_bucket, "", str(moto_server)).put("in/c.csv", b"x,y\n")
    # When data goes in and comes back out through the console script
    for args in (["create-repo", "r"], ["put-file", "r", "master", "/t", "-r", "-f", "tree"],
                 ["put-file", "r", "master", "-f", f"s3://{source_bucket}/in/c.csv"]):
        proc = _run(args, env, work)
        assert proc.returncode == 0, proc.stderr.decode()
    listing = _run(["list-file", "r", "master", "/t", "--json"], env, work)
    got = _run(["get-file", "r", "master", "/t/b.txt"], env, work)
    # Then it is all there
    paths = [json.loads(line)["file"]["path"] for line in listing.stdout.decode().splitlines()]
    assert paths == ["/t/a.txt", "/t/b.txt"]
    assert got.stdout == b"bb"
    assert _run(["get-file", "r", "master", "/in/c.csv"], env, work).stdout == b"x,y\n"
    _assert_one_line_error(_run(["create-repo", "bad/name"], env, work), 4)


@pytest.mark.slow  # boto3 retries a refused connection with backoff before giving up
def test_unreachable_s3_endpoint_is_named(tmp_path: Path, work: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = _env(HERD_STORAGE=f"s3://{fresh_bucket()}/herd", AWS_ENDPOINT_URL=closed,
               **FAKE_AWS_ENV)
    err = _assert_one_line_error(_run(["list-repo"], env, work), 6)
    assert closed in err


# --- issue 9: one open commit per branch, names, delete-file no-op -------------------------


def test_second_start_commit_is_refused_and_every_verb_means_the_open_one(
    herd: Herd, store: Path
) -> None:
    # Given an open commit on master (the scenario)
    herd("create-repo", "test")
    first = herd("start-commit", "test", "master").stdout.strip()
    before = snapshot(store)
    # When start-commit names the branch again, Then it fails naming the open commit
    message = fails(herd, 5, "start-commit", "test", "master")
    assert first in message and "master" in message
    assert snapshot(store) == before
    # And put-file, finish-commit and get-file of the branch all mean that one commit
    herd("put-file", "test", "master", "/z", input=b"z")
    herd("finish-commit", "test", "master")
    assert herd("get-file", "test", "master", "/z").stdout == "z"
    listed = raw_lines(herd("list-commit", "test", "--json"))
    assert [(c["commit"]["id"], c["finished"] is not None) for c in listed] == [(first, True)]


def test_put_file_to_a_64_character_branch_is_refused(herd: Herd, store: Path) -> None:
    herd("create-repo", "in")
    before = snapshot(store)
    long = "b" * 64
    for args in (("put-file", "in", long, "/x"), ("start-commit", "in", long),
                 ("create-branch", "in", long), ("create-repo", long)):
        assert long in fails(herd, 4, *args, input=b"x")
        assert snapshot(store) == before
    assert long not in herd("list-branch", "in").stdout


def test_delete_file_of_a_missing_path_in_an_open_commit_succeeds(herd: Herd, store: Path) -> None:
    herd("create-repo", "r")
    herd("start-commit", "r", "master")
    before = snapshot(store)
    herd("delete-file", "r", "master", "/nothing-here")
    assert snapshot(store) == before
    herd("finish-commit", "r", "master")


@pytest.mark.s3
def test_long_branch_names_are_refused_on_s3(moto_server: object, tmp_path: Path,
                                             work: Path) -> None:
    env = _env(HERD_STORAGE=f"s3://{fresh_bucket()}/herd",
               HERD_S3_ENDPOINT_URL=str(moto_server), **FAKE_AWS_ENV)
    assert _run(["create-repo", "r"], env, work).returncode == 0
    for length in (64, 300, 10_000):
        err = _assert_one_line_error(_run(["put-file", "r", "b" * length, "/x"], env, work,
                                          input=b"x"), 4)
        assert "branch" in err
    listed = _run(["list-branch", "r"], env, work)
    assert listed.returncode == 0 and len(listed.stdout.decode().splitlines()) <= 1
