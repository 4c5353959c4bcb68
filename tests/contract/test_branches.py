"""Branch-head CAS per backend, and the race: 8 processes committing to one branch at once.

The process races run on the local folder and on the SINGLE-THREADED moto server: moto's
threaded server checks preconditions without a lock (races usually, not always, serialised),
so only the serial one makes a lost update a bug in herd rather than in the test server.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from storage import branches
from storage.errors import ConcurrentUpdateError, Conflict, InvalidArgument, InvalidName
from storage.layout import branch_key
from storage.model import Branch
from storage.objects import ObjectStore
from storage.repos import Pfs
from tests.fixtures.s3 import FAKE_AWS_ENV, fresh_bucket

WRITERS = 8


def test_missing_branch_reads_as_none(object_store: ObjectStore) -> None:
    assert branches.read_branch(object_store, "r", "master") is None


def test_update_branch_creates_then_advances_with_new_bodies(object_store: ObjectStore) -> None:
    # Given no branch, When created and then "updated" to the same head twice
    created = branches.update_branch(object_store, "r", "b", lambda cur: Branch(repo="r", name="b"))
    same1 = branches.update_branch(object_store, "r", "b", lambda cur: cur)
    same2 = branches.update_branch(object_store, "r", "b", lambda cur: cur)
    # Then generations count up and the writer differs: a body (and so an ETag) never repeats
    assert created and same1 and same2
    assert (created.generation, same1.generation, same2.generation) == (1, 2, 3)
    assert len({created.writer, same1.writer, same2.writer}) == 3
    assert branches.read_branch(object_store, "r", "b") == same2


def test_fn_returning_none_or_raising_writes_nothing(object_store: ObjectStore) -> None:
    branches.update_branch(object_store, "r", "b", lambda cur: Branch(repo="r", name="b", head="h1"))
    before = object_store.get(branch_key("r", "b"))
    unchanged = branches.update_branch(object_store, "r", "b", lambda cur: None)
    assert unchanged is not None and unchanged.head == "h1"

    def refuse(cur: Branch | None) -> Branch:
        raise InvalidArgument("no")

    with pytest.raises(InvalidArgument):
        branches.update_branch(object_store, "r", "b", refuse)
    assert object_store.get(branch_key("r", "b")) == before


def test_a_lost_race_retries_on_the_fresh_branch(object_store: ObjectStore) -> None:
    # Given a branch, and a rival that moves it between the first read and its CAS
    branches.update_branch(object_store, "r", "b", lambda cur: Branch(repo="r", name="b", head="h1"))
    seen: list[str | None] = []

    def mine(cur: Branch | None) -> Branch:
        assert cur is not None
        seen.append(cur.head)
        if len(seen) == 1:
            branches.update_branch(object_store, "r", "b", lambda c: c and c.model_copy(update={"head": "rival"}))
        return cur.model_copy(update={"head": f"{cur.head}+mine"})

    # When updated, Then the CAS over the stale token loses and the retry builds on the rival's head
    stored = branches.update_branch(object_store, "r", "b", mine)
    assert seen == ["h1", "rival"]
    assert stored is not None and stored.head == "rival+mine" and stored.generation == 3
    assert branches.read_branch(object_store, "r", "b") == stored


def test_gives_up_after_max_tries(object_store: ObjectStore) -> None:
    # Given a rival that rewrites the branch between every read and CAS
    branches.update_branch(object_store, "r", "b", lambda cur: Branch(repo="r", name="b"))
    calls = 0

    def always_raced(cur: Branch | None) -> Branch:
        nonlocal calls
        calls += 1
        branches.update_branch(object_store, "r", "b", lambda c: c)  # the rival wins
        assert cur is not None
        return cur.model_copy(update={"head": "mine"})

    # Then update_branch gives up with ConcurrentUpdateError naming the key
    with pytest.raises(ConcurrentUpdateError, match="repos/r/branches/b"):
        branches.update_branch(object_store, "r", "b", always_raced, max_tries=3)
    assert calls == 3
    branch = branches.read_branch(object_store, "r", "b")
    assert branch is not None and branch.head is None


def test_threads_racing_on_one_branch_lose_nothing(object_store: ObjectStore) -> None:
    branches.update_branch(object_store, "r", "b", lambda cur: Branch(repo="r", name="b", head="0"))
    rounds = 3

    def bump(cur: Branch | None) -> Branch:
        assert cur is not None and cur.head is not None
        return cur.model_copy(update={"head": str(int(cur.head) + 1)})

    def writer() -> None:
        for _ in range(rounds):
            branches.update_branch(object_store, "r", "b", bump)

    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = branches.read_branch(object_store, "r", "b")
    assert final is not None and final.head == str(WRITERS * rounds)
    assert final.generation == WRITERS * rounds + 1


# ---- 8 processes --------------------------------------------------------------------------


def _open_store(spec: tuple[str, ...]) -> ObjectStore:
    if spec[0] == "local":
        from storage.local import LocalObjectStore

        return LocalObjectStore(Path(spec[1]))
    from storage.s3 import S3ObjectStore

    return S3ObjectStore(spec[1], spec[2], spec[3])


def _commit_worker(spec: tuple[str, ...], index: int, mode: str, barrier: Any, out: Any) -> None:
    """One racing process: put a file on master (mode 'put') or finish its open commit."""
    # The forkserver may predate the aws_env fixture, so children get the fake credentials here.
    os.environ.update(FAKE_AWS_ENV)
    try:
        pfs = Pfs(_open_store(spec))
        path, data = f"/w{index}.txt", f"writer {index}".encode()
        if mode == "finish" and index == 0:
            # One open commit per branch: this one finishes while the others land one-step
            # commits, so its finish must rebase on heads that move under it.
            opened = pfs.commits.start("data", "master")
            pfs.put_file("data", opened.id, path, data)
            barrier.wait(timeout=60)
            out.put(("ok", pfs.finish_commit("data", opened.id).id))
        elif mode == "finish":
            entry = pfs.files.upload(data)
            barrier.wait(timeout=60)
            made = pfs.commits.commit_on_branch(
                "data", "master",
                lambda base: base.model_copy(update={"files": {**base.files, path: entry}}))
            out.put(("ok", made.id))
        elif mode == "start":
            barrier.wait(timeout=60)
            try:
                out.put(("ok", pfs.start_commit("data", "master").id))
            except Conflict as exc:
                out.put(("ok", f"lost: {exc}"))
        else:
            barrier.wait(timeout=60)
            out.put(("ok", pfs.put_file("data", "master", path, data).id))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def _race(spec: tuple[str, ...], mode: str) -> list[str]:
    # forkserver: children fork from a clean, preloaded process (fast, and never inherit this
    # process's boto3 clients or server threads as a plain fork would)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["storage.repos", "storage.local", "storage.s3", __name__])
    barrier, out = ctx.Barrier(WRITERS), ctx.Queue()
    procs = [ctx.Process(target=_commit_worker, args=(spec, i, mode, barrier, out))
             for i in range(WRITERS)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=180) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    errors = [detail for status, detail in results if status != "ok"]
    assert errors == []
    return [detail for _, detail in results]


def _assert_linear(pfs: Pfs, made: list[str]) -> None:
    history = pfs.list_commits("data", "master")
    assert [c.finished is not None for c in history] == [True] * WRITERS
    assert sorted(c.id for c in history) == sorted(made), "a commit was lost"
    for newer, older in zip(history, history[1:]):
        assert newer.parent == older.id
    assert history[-1].parent is None
    for position, commit in enumerate(reversed(history), start=1):
        assert len(pfs.read_manifest(commit).files) == position
    head = pfs.read_manifest(history[0])
    assert sorted(head.files) == sorted(f"/w{i}.txt" for i in range(WRITERS))
    for i in range(WRITERS):
        with pfs.open_file("data", "master", f"/w{i}.txt") as handle:
            assert handle.read() == f"writer {i}".encode()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def race_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[tuple[str, ...], ObjectStore]:
    """A store spec a child process can reopen: local folder, or a bucket on serial moto."""
    if request.param == "local":
        spec: tuple[str, ...] = ("local", str(tmp_path / "store"))
    else:
        server = request.getfixturevalue("moto_server_serial")
        spec = ("s3", fresh_bucket(), "herd", server.url)
    return spec, _open_store(spec)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["put", "finish"])
def test_eight_processes_commit_to_one_branch(
    race_store: tuple[tuple[str, ...], ObjectStore], mode: str
) -> None:
    # Given a repo, When 8 processes each commit one file to master at once
    spec, store = race_store
    pfs = Pfs(store)
    pfs.create_repo("data")
    made = _race(spec, mode)
    # Then there are 8 commits, none lost, in one linear history holding all 8 files
    _assert_linear(pfs, made)
    assert list(store.list("repos/data/open/")) == []


@pytest.mark.slow
def test_eight_processes_start_a_commit_on_one_branch_one_wins(
    race_store: tuple[tuple[str, ...], ObjectStore]
) -> None:
    # Given a repo, When 8 processes start a commit on master at once
    spec, store = race_store
    Pfs(store).create_repo("data")
    results = _race(spec, "start")
    # Then exactly one wins; each loser was refused naming the winner; one open record is left
    won = [r for r in results if not r.startswith("lost: ")]
    assert len(won) == 1
    assert all(won[0] in r for r in results)
    assert [key.rsplit("/", 1)[1] for key in store.list("repos/data/open/")] == won
    branch = branches.read_branch(store, "data", "master")
    assert branch is not None and branch.open_commit == won[0]


@pytest.mark.parametrize("name", ["x" * 64, "x" * 300, "x" * 10_000, "master\n", "a/b", ""])
def test_branch_keys_refuse_names_reads_refuse(object_store: ObjectStore, name: str) -> None:
    # Every branch read and write goes through branch_key: a name reads refuse is never written
    with pytest.raises(InvalidName):
        branches.update_branch(object_store, "r", name, lambda cur: Branch(repo="r", name=name))
    with pytest.raises(InvalidName):
        branches.read_branch(object_store, "r", name)
    with pytest.raises(InvalidName):
        branches.update_branch(object_store, name, "b", lambda cur: Branch(repo=name, name="b"))
    assert list(object_store.list("")) == []
