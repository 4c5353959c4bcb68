"""Crash safety of every write: the real `herd` CLI is killed at each failpoint, then the next
command that touches the branch or repo must leave it consistent, with no manual step.

Each case sets up a repo in-process (fast), runs ONE command through the console script with
`HERD_FAILPOINTS=<point>` (it exits 137 there, as under SIGKILL: no cleanup runs), runs the
follow-up command a user would run next, and then checks, in-process, that the interrupted
write is either wholly there or wholly absent, that nothing stays open, that list-commit and
inspect-commit agree, and that the branch still takes put-file, start-commit and
finish-commit. Every case runs on a local folder and on moto's S3 server over HTTP.

Failpoints (storage/commits.py, storage/repos.py):
  commit.before_manifest / commit.after_manifest / commit.after_commit_record
      a commit made in one step (put-file or delete-file on a branch without an open commit)
  open-commit.before_update                       put-file/delete-file into an open commit
  start-commit.after_open_record                  start-commit, before the branch is claimed
  finish-commit.after_seal / .after_manifest / .after_commit_record / .after_branch
  delete-branch.after_branch                      the branch is gone, its open record not yet
  delete-repo.after_repo_record / .after_branches / .after_open / .after_commits
  delete-commit.after_branches                    branches moved off (or claims dropped), record kept
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from storage.errors import CommitNotFound, FileNotFound, RepoNotFound
from storage.failpoints import EXIT_STATUS
from storage.objects import ObjectStore
from storage.repos import Pfs
from tests.fixtures.s3 import FAKE_AWS_ENV, fresh_bucket

ROOT = Path(__file__).resolve().parents[2]
HERD = ROOT / ".venv" / "bin" / "herd"


@dataclass
class Backend:
    """One store, reachable from this process (`pfs`) and from a child `herd` (`env`)."""

    store: ObjectStore
    env: dict[str, str]
    cwd: Path

    @property
    def pfs(self) -> Pfs:
        return Pfs(self.store)  # a fresh handle: no cache from before the crash

    def herd(self, *args: str, input: bytes | None = None, failpoint: str | None = None,
             code: int = 0) -> subprocess.CompletedProcess[bytes]:
        env = dict(self.env, HERD_FAILPOINTS=failpoint) if failpoint else self.env
        proc = subprocess.run([str(HERD), *args], env=env, cwd=self.cwd, input=input,
                              capture_output=True, timeout=120)
        assert proc.returncode == code, (args, failpoint, proc.returncode, proc.stderr.decode())
        if code not in (0, EXIT_STATUS):
            assert b"Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1
        return proc

    def crash(self, failpoint: str, *args: str, input: bytes | None = None) -> None:
        """Run `args` killed at `failpoint`: it must reach the point (exit 137)."""
        self.herd(*args, input=input, failpoint=failpoint, code=EXIT_STATUS)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_"))}
    env.update(extra)
    return env


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        from storage.local import LocalObjectStore

        folder = tmp_path / "store"
        return Backend(LocalObjectStore(folder), _clean_env(HERD_STORAGE=f"file://{folder}"),
                       tmp_path)
    from storage.s3 import S3ObjectStore

    server = request.getfixturevalue("moto_server")
    bucket = fresh_bucket()
    env = _clean_env(HERD_STORAGE=f"s3://{bucket}/herd", HERD_S3_ENDPOINT_URL=server.url,
                     **FAKE_AWS_ENV)
    return Backend(S3ObjectStore(bucket, "herd", server.url), env, tmp_path)


# ---- checks shared by every case ------------------------------------------------------------


def files(pfs: Pfs, ref: str = "master", repo: str = "data") -> dict[str, bytes]:
    manifest = pfs.read_manifest(pfs.inspect_commit(repo, ref))
    out = {}
    for path in manifest.files:
        with pfs.open_file(repo, ref, path) as handle:
            out[path] = handle.read()
    return out


def assert_consistent(pfs: Pfs, repo: str = "data") -> None:
    """list-commit and inspect-commit agree; each branch has at most one open commit, claimed."""
    listed = pfs.list_commits(repo)
    for commit in listed:
        inspected = pfs.inspect_commit(repo, commit.id)
        assert (inspected.finished is None) == (commit.finished is None), commit.id
    opened = [c for c in listed if c.finished is None]
    for branch in pfs.list_branches(repo):
        mine = [c.id for c in opened if c.branch == branch.name]
        assert mine == ([branch.open_commit] if branch.open_commit else []), branch
        if branch.head:
            assert pfs.inspect_commit(repo, branch.name).id == branch.head
            assert pfs.inspect_commit(repo, branch.head).finished is not None


def assert_usable(pfs: Pfs, branch: str = "master", repo: str = "data") -> None:
    """The branch takes a one-step put, then a start / put / finish cycle, and reads back."""
    assert_consistent(pfs, repo)
    existing = {b.name: b for b in pfs.list_branches(repo)}.get(branch)
    if existing is not None and existing.open_commit is not None:
        pfs.finish_commit(repo, branch)
    pfs.put_file(repo, branch, "/probe/one", b"1")
    opened = pfs.start_commit(repo, branch)
    pfs.put_file(repo, branch, "/probe/two", b"2")
    assert pfs.finish_commit(repo, branch).id == opened.id
    got = files(pfs, branch, repo)
    assert got["/probe/one"] == b"1" and got["/probe/two"] == b"2"
    assert pfs.commits.open_commits(repo) == []
    assert_consistent(pfs, repo)


def open_records(store: ObjectStore, repo: str = "data") -> list[str]:
    return [key.rsplit("/", 1)[1] for key in store.list(f"repos/{repo}/open/")]


def base_repo(pfs: Pfs) -> str:
    """A repo 'data' whose master holds /base; returns the head id."""
    pfs.create_repo("data")
    return pfs.put_file("data", "master", "/base", b"base").id


# ---- put-file / delete-file as a commit of their own ----------------------------------------

ONE_STEP = ["commit.before_manifest", "commit.after_manifest", "commit.after_commit_record"]


@pytest.mark.parametrize("point", ONE_STEP)
def test_put_file_on_a_branch_killed_is_absent_and_the_branch_works(
    backend: Backend, point: str
) -> None:
    head = base_repo(backend.pfs)
    backend.crash(point, "put-file", "data", "master", "/new", input=b"new")
    # The next command on the branch works and the killed put is wholly absent
    backend.herd("put-file", "data", "master", "/next", input=b"next")
    pfs = backend.pfs
    assert files(pfs) == {"/base": b"base", "/next": b"next"}
    assert pfs.inspect_commit("data", "master^").id == head
    assert_usable(pfs)


def test_put_file_creating_a_branch_killed_leaves_no_branch(backend: Backend) -> None:
    base_repo(backend.pfs)
    backend.crash("commit.after_commit_record", "put-file", "data", "fresh", "/x", input=b"x")
    listed = backend.herd("list-branch", "data").stdout.decode()
    assert "fresh" not in listed and "master" in listed
    backend.herd("put-file", "data", "fresh", "/y", input=b"y")
    assert files(backend.pfs, "fresh") == {"/y": b"y"}
    assert_usable(backend.pfs, "fresh")


def test_delete_file_killed_keeps_the_file(backend: Backend) -> None:
    base_repo(backend.pfs)
    backend.crash("commit.after_commit_record", "delete-file", "data", "master", "/base")
    assert backend.herd("get-file", "data", "master", "/base").stdout == b"base"
    backend.herd("delete-file", "data", "master", "/base")
    assert files(backend.pfs) == {}
    assert_usable(backend.pfs)


# ---- writes into an open commit, start-commit -----------------------------------------------


def test_put_file_into_an_open_commit_killed_is_absent(backend: Backend) -> None:
    pfs = backend.pfs
    base_repo(pfs)
    opened = pfs.start_commit("data", "master")
    pfs.put_file("data", "master", "/kept", b"kept")
    backend.crash("open-commit.before_update", "put-file", "data", "master", "/new", input=b"new")
    # The open commit is still the branch's, without the killed file; finishing it works
    backend.herd("finish-commit", "data", "master")
    pfs = backend.pfs
    assert files(pfs) == {"/base": b"base", "/kept": b"kept"}
    assert pfs.inspect_commit("data", "master").id == opened.id
    assert_usable(pfs)


def test_start_commit_killed_leaves_no_open_commit(backend: Backend) -> None:
    base_repo(backend.pfs)
    backend.crash("start-commit.after_open_record", "start-commit", "data", "master")
    # The half-started commit is nowhere: not listed, not claimed, not in the way
    pfs = backend.pfs
    assert pfs.commits.open_commits("data") == []
    assert pfs.inspect_branch("data", "master").open_commit is None
    orphans = open_records(backend.store)
    assert len(orphans) == 1
    backend.herd("inspect-commit", "data", orphans[0], code=2)
    # And the next start-commit on the branch succeeds
    started = backend.herd("start-commit", "data", "master").stdout.decode().strip()
    assert [c.id for c in backend.pfs.commits.open_commits("data")] == [started]
    assert_usable(backend.pfs)


# ---- finish-commit ----------------------------------------------------------------------------

# (failpoint, the follow-up command a user would run next, its exit code)
FINISH = [
    ("finish-commit.after_seal", ("put-file", "data", "master", "/after"), 0),
    ("finish-commit.after_manifest", ("list-commit", "data", "master"), 0),
    ("finish-commit.after_commit_record", ("start-commit", "data", "master"), 0),
    ("finish-commit.after_branch", ("inspect-commit", "data", "{id}"), 0),
    ("finish-commit.after_seal", ("finish-commit", "data", "{id}"), 5),  # already finished
    ("finish-commit.after_manifest", ("create-branch", "data", "master"), 0),
]


@pytest.mark.parametrize(("point", "follow", "code"), FINISH,
                         ids=[f"{p}-{f[0]}" for p, f, _ in FINISH])
def test_finish_commit_killed_is_completed_by_the_next_command(
    backend: Backend, point: str, follow: tuple[str, ...], code: int
) -> None:
    pfs = backend.pfs
    head = base_repo(pfs)
    opened = pfs.start_commit("data", "master")
    pfs.put_file("data", "master", "/in-open", b"in open")
    backend.crash(point, "finish-commit", "data", "master")
    # The next command touching the branch (or the commit) lands the sealed commit
    backend.herd(*(word.format(id=opened.id) for word in follow), input=b"after", code=code)
    pfs = backend.pfs
    landed = pfs.inspect_commit("data", opened.id)
    assert landed.finished is not None and landed.parent == head
    got = files(pfs)
    assert got["/base"] == b"base" and got["/in-open"] == b"in open"
    history = [c.id for c in pfs.list_commits("data", "master") if c.finished is not None]
    assert history[-2:] == [opened.id, head]
    # A stale open record (killed after the branch moved) goes once the commit is named
    assert opened.id not in open_records(backend.store)
    assert_usable(pfs)


def test_finish_of_a_clashing_commit_killed_reopens_it(backend: Backend) -> None:
    # Given an open commit whose replay will clash with what landed meanwhile
    pfs = backend.pfs
    base_repo(pfs)
    opened = pfs.start_commit("data", "master")
    pfs.put_file("data", opened.id, "/d", b"file")
    entry = pfs.files.upload(b"x")
    pfs.write_commit("data", "master", pfs.read_manifest(pfs.inspect_commit("data", "master"))
                     .model_copy(update={"files": {"/base": entry, "/d/x": entry}}))
    backend.crash("finish-commit.after_seal", "finish-commit", "data", "master")
    # Then the next command cannot land it, so it is open again and can be repaired
    listed = backend.herd("list-commit", "data", "master").stdout.decode()
    assert opened.id in listed
    pfs = backend.pfs
    assert pfs.inspect_commit("data", opened.id).finished is None
    pfs.delete_file("data", "master", "/d/x")
    pfs.finish_commit("data", "master")
    assert files(pfs)["/d"] == b"file"
    assert_usable(pfs)


# ---- delete-branch, delete-repo ---------------------------------------------------------------


def test_delete_branch_killed_is_deleted(backend: Backend) -> None:
    pfs = backend.pfs
    base_repo(pfs)
    opened = pfs.start_commit("data", "dev")
    pfs.put_file("data", "dev", "/wip", b"wip")
    backend.crash("delete-branch.after_branch", "delete-branch", "data", "dev", "--force")
    # The branch and its open commit are gone for every command
    assert "dev" not in backend.herd("list-branch", "data").stdout.decode()
    backend.herd("inspect-commit", "data", opened.id, code=2)
    pfs = backend.pfs
    assert [c.branch for c in pfs.list_commits("data")] == ["master"]
    # And a new branch of that name starts clean
    backend.herd("start-commit", "data", "dev")
    backend.herd("finish-commit", "data", "dev")
    with pytest.raises(FileNotFound, match="wip"):
        pfs.inspect_file("data", "dev", "/wip")
    assert_usable(backend.pfs, "dev")


DELETE_REPO = ["delete-repo.after_repo_record", "delete-repo.after_branches",
               "delete-repo.after_open", "delete-repo.after_commits"]


@pytest.mark.parametrize("point", DELETE_REPO)
def test_delete_repo_killed_is_deleted_and_the_name_reusable(
    backend: Backend, point: str
) -> None:
    pfs = backend.pfs
    base_repo(pfs)
    pfs.put_file("data", "dev", "/dev", b"dev")
    opened = pfs.start_commit("data", "master")
    pfs.create_repo("other")
    backend.crash(point, "delete-repo", "data", "--force")
    # The repo is gone for every command, at once
    listed = backend.herd("list-repo").stdout.decode()
    assert "data" not in listed and "other" in listed
    backend.herd("list-commit", "data", code=2)
    backend.herd("inspect-commit", "data", opened.id, code=2)
    # And a new repo of that name inherits nothing
    backend.herd("create-repo", "data")
    pfs = backend.pfs
    assert pfs.list_branches("data") == [] and pfs.list_commits("data") == []
    with pytest.raises((CommitNotFound, RepoNotFound)):
        pfs.inspect_commit("data", opened.id)
    assert [key for key in backend.store.list("repos/data/") if not key.endswith("repo.json")] == []
    assert_usable(pfs)


def test_delete_commit_killed_is_finished_by_running_it_again(backend: Backend) -> None:
    # Given master with two commits, and delete-commit of its head killed after the branch moved
    pfs = backend.pfs
    pfs.create_repo("data")
    first = pfs.put_file("data", "master", "/a", b"a")
    head = pfs.put_file("data", "master", "/b", b"b")
    backend.crash("delete-commit.after_branches", "delete-commit", "data", head.id)
    # Then the branch is at the parent already; running it again deletes the record
    assert backend.pfs.inspect_branch("data", "master").head == first.id
    backend.herd("delete-commit", "data", head.id)
    with pytest.raises(CommitNotFound):
        backend.pfs.inspect_commit("data", head.id)
    assert files(backend.pfs) == {"/a": b"a"}
    assert_usable(backend.pfs)


def test_delete_commit_of_an_open_commit_killed_leaves_it_discarded(backend: Backend) -> None:
    # Given an open commit with a file, and delete-commit killed after its claim was dropped
    pfs = backend.pfs
    pfs.create_repo("data")
    pfs.put_file("data", "master", "/a", b"a")
    opened = pfs.start_commit("data", "master")
    pfs.put_file("data", opened.id, "/wip", b"w")
    backend.crash("delete-commit.after_branches", "delete-commit", "data", opened.id)
    # Then the unclaimed record is not a commit (garbage for gc) and the branch takes new ones
    backend.herd("inspect-commit", "data", opened.id, code=2)
    assert files(backend.pfs) == {"/a": b"a"}
    assert_usable(backend.pfs)


def test_every_failpoint_is_exercised() -> None:
    """Each failpoint in the write paths has a case here: a new write step needs a test."""
    source = "".join((ROOT / "storage" / name).read_text() for name in ("commits.py", "repos.py"))
    named = set(re.findall(r'failpoints\.hit\("([^"]+)"\)', source))
    named |= {f"delete-repo.after_{kind}" for kind in ("branches", "open", "commits")}
    tested = set(ONE_STEP) | {p for p, _, _ in FINISH} | set(DELETE_REPO) | {
        "open-commit.before_update", "start-commit.after_open_record",
        "delete-branch.after_branch", "delete-commit.after_branches",
    }
    assert named == tested
