"""The porcelain (`Pfs`) over every backend: memory, local folder and moto S3 (serial server)."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest

from storage.commits import HEAD
from storage.errors import (
    AlreadyExists,
    BranchNotFound,
    CommitFinished,
    CommitNotFound,
    Conflict,
    FileNotFound,
    HerdError,
    InvalidArgument,
    InvalidName,
    InvalidPath,
    RepoNotFound,
)
from storage.model import BranchRef, CommitRef, FileEntry, Manifest
from storage.objects import ObjectStore
from storage.ops import FileOp, apply_ops
from storage.refnames import parse_ref
from storage.repos import Pfs


@pytest.fixture
def store(object_store: ObjectStore) -> ObjectStore:
    return object_store


@pytest.fixture
def pfs(store: ObjectStore) -> Pfs:
    pfs = Pfs(store)
    pfs.create_repo("data", description="test data")
    return pfs


def read(pfs: Pfs, ref: str, path: str, repo: str = "data") -> bytes:
    with pfs.open_file(repo, ref, path) as handle:
        return handle.read()


def snapshot(store: ObjectStore) -> dict[str, bytes]:
    return {key: store.get(key) for key in store.list("")}


def files_at(pfs: Pfs, ref: str, repo: str = "data") -> dict[str, bytes]:
    manifest = pfs.read_manifest(pfs.inspect_commit(repo, ref))
    return {path: read(pfs, ref, path, repo) for path in manifest.files}


# ---- repos ---------------------------------------------------------------------------------


def test_create_list_inspect_repo(pfs: Pfs) -> None:
    # Given a repo with two branches, When listed, Then its size is master's head's, as pachctl's
    pfs.create_repo("other")
    pfs.put_file("data", "master", "/a", b"12345")
    pfs.put_file("data", "dev", "/a", b"12345")
    pfs.put_file("data", "dev", "/b", b"xy")
    infos = {info.name: info for info in pfs.list_repos()}
    assert set(infos) == {"data", "other"}
    assert infos["data"].size == 5 and infos["other"].size == 0
    assert infos["data"].description == "test data"
    assert pfs.inspect_repo("data").branches == ("dev", "master")


def test_repo_errors(pfs: Pfs) -> None:
    with pytest.raises(AlreadyExists, match="repo 'data' already exists"):
        pfs.create_repo("data")
    with pytest.raises(InvalidName, match="'bad/name'"):
        pfs.create_repo("bad/name")
    with pytest.raises(RepoNotFound, match="repo 'nope' not found"):
        pfs.inspect_repo("nope")
    with pytest.raises(RepoNotFound):
        pfs.put_file("nope", "master", "/a", b"x")


def test_delete_repo_needs_force_when_it_has_commits(pfs: Pfs, store: ObjectStore) -> None:
    # Given a repo with a commit
    pfs.put_file("data", "master", "/a", b"kept blob")
    before = snapshot(store)
    # When deleted without force, Then it is refused naming the repo and --force, nothing changed
    with pytest.raises(Conflict, match="repo 'data'.*--force"):
        pfs.delete_repo("data")
    assert snapshot(store) == before
    # When forced, Then its records are gone but the shared blob stays
    pfs.delete_repo("data", force=True)
    assert pfs.list_repos() == []
    assert list(store.list("repos/")) == []
    assert any(key.startswith("blobs/") for key in store.list(""))
    pfs.create_repo("empty")
    pfs.delete_repo("empty")
    assert pfs.list_repos() == []


# ---- put-file on a branch: a commit by itself ----------------------------------------------


def test_put_file_makes_a_commit_and_creates_the_branch(pfs: Pfs, tmp_path: Path) -> None:
    local = tmp_path / "local.bin"
    local.write_bytes(b"from a path")
    first = pfs.put_file("data", "master", "a.txt", b"bytes")
    second = pfs.put_file("data", "master", "/dir/b.txt", local)
    third = pfs.put_file("data", "master", "/dir/sub/c.txt", io.BytesIO(b"stream"))
    assert first.finished and first.parent is None and first.branch == "master"
    assert second.parent == first.id and third.parent == second.id
    assert pfs.inspect_branch("data", "master").head == third.id
    assert files_at(pfs, "master") == {
        "/a.txt": b"bytes", "/dir/b.txt": b"from a path", "/dir/sub/c.txt": b"stream",
    }
    assert third.size == 5 + 11 + 6


def test_big_stream_and_overwrite_and_append(pfs: Pfs, tmp_path: Path) -> None:
    big = bytes(range(256)) * (5 * 4096 + 7)  # over the blob store's in-memory limit
    pfs.put_file("data", "master", "/big", io.BytesIO(big))
    assert read(pfs, "master", "/big") == big
    pfs.put_file("data", "master", "/f", b"one")
    pfs.put_file("data", "master", "/f", b"two")
    assert read(pfs, "master", "/f") == b"two"
    commit = pfs.put_file("data", "master", "/f", b"+three", append=True)
    assert read(pfs, "master", "/f") == b"two+three"
    assert len(pfs.read_manifest(commit).files["/f"].chunks) == 2
    # get_file writes multi-chunk files to a path and to a stream
    pfs.get_file("data", "master", "/f", tmp_path / "out" / "f")
    assert (tmp_path / "out" / "f").read_bytes() == b"two+three"
    sink = io.BytesIO()
    pfs.get_file("data", "master", "/f", sink)
    assert sink.getvalue() == b"two+three"
    pfs.put_file("data", "master", "/new", b"appended to nothing", append=True)
    assert read(pfs, "master", "/new") == b"appended to nothing"


def test_list_and_inspect_file(pfs: Pfs) -> None:
    commit = pfs.put_files("data", "master", [("/a.txt", b"aa"), ("/dir/c.txt", b"ccc"),
                                              ("/dir/sub/d.txt", b"dddd")])
    listing = pfs.list_file("data", "master")
    assert [(i.path, i.type, i.size) for i in listing] == [("/a.txt", "file", 2), ("/dir", "dir", 7)]
    assert all(i.commit == commit.id for i in listing)
    assert [i.path for i in pfs.list_file("data", "master", "dir/")] == ["/dir/c.txt", "/dir/sub"]
    assert [i.path for i in pfs.list_file("data", "master", "/a.txt")] == ["/a.txt"]
    info = pfs.inspect_file("data", "master", "/dir/sub/d.txt")
    assert info.type == "file" and info.size == 4 and len(info.hash) == 64
    assert pfs.inspect_file("data", "master", "/").size == 9
    with pytest.raises(FileNotFound) as missing:
        pfs.list_file("data", "master", "/nope")
    assert "'/nope'" in str(missing.value) and "'data'" in str(missing.value)
    assert commit.id in str(missing.value)
    with pytest.raises(InvalidArgument, match="directory"):
        pfs.open_file("data", "master", "/dir")


def test_get_file_recursive(pfs: Pfs, tmp_path: Path) -> None:
    pfs.put_files("data", "master", [("/d/x", b"x"), ("/d/e/y", b"y"), ("/z", b"z")])
    pfs.get_file("data", "master", "/d", tmp_path / "d", recursive=True)
    assert (tmp_path / "d" / "x").read_bytes() == b"x"
    assert (tmp_path / "d" / "e" / "y").read_bytes() == b"y"
    with pytest.raises(InvalidArgument, match="recursive"):
        pfs.get_file("data", "master", "/d", tmp_path / "again")


def test_delete_file(pfs: Pfs) -> None:
    pfs.put_files("data", "master", [("/a", b"a"), ("/d/x", b"x"), ("/d/y", b"y")])
    pfs.delete_file("data", "master", "/a")
    assert set(files_at(pfs, "master")) == {"/d/x", "/d/y"}
    pfs.delete_file("data", "master", "/d")
    assert files_at(pfs, "master") == {}
    with pytest.raises(FileNotFound, match="'/d'"):
        pfs.delete_file("data", "master", "/d")
    with pytest.raises(InvalidArgument, match="root"):
        pfs.delete_file("data", "master", "/")


# ---- open commits --------------------------------------------------------------------------


def test_open_commit_is_invisible_until_finished(pfs: Pfs) -> None:
    base = pfs.put_file("data", "master", "/old", b"old")
    # Given an open commit with a file in it
    opened = pfs.start_commit("data", "master", description="wip")
    assert opened.finished is None and opened.parent == base.id
    pfs.put_file("data", opened.id, "/new", b"new")
    # Then readers of the branch still see the old head; the open commit, read by its id, shows
    # its tree as it would be if finished now (Pachyderm 1.9 reads open commits)
    assert pfs.inspect_commit("data", "master").id == base.id
    assert set(files_at(pfs, "master")) == {"/old"}
    assert pfs.inspect_commit("data", opened.id).finished is None
    assert [i.path for i in pfs.list_file("data", opened.id)] == ["/new", "/old"]
    with pytest.raises(InvalidArgument, match="still open"):  # the scheduler's strict read
        pfs.read_manifest(pfs.inspect_commit("data", opened.id))
    # And list_commits shows it first, unfinished, as pachctl does
    listed = pfs.list_commits("data", "master")
    assert [c.id for c in listed] == [opened.id, base.id] and listed[0].finished is None
    # When finished, Then it is the head with both files
    done = pfs.finish_commit("data", opened.id)
    assert done.finished and done.parent == base.id and done.description == "wip"
    assert pfs.inspect_commit("data", "master").id == opened.id
    assert files_at(pfs, "master") == {"/old": b"old", "/new": b"new"}
    assert [c.id for c in pfs.list_commits("data")] == [opened.id, base.id]
    assert list(pfs.objects.list("repos/data/open/")) == []


def test_put_to_branch_with_open_commit_joins_it(pfs: Pfs) -> None:
    opened = pfs.start_commit("data", "dev")
    joined = pfs.put_file("data", "dev", "/a", b"a")
    assert joined.id == opened.id
    with pytest.raises(CommitNotFound, match="has no commits"):
        pfs.inspect_commit("data", "dev")
    pfs.delete_file("data", "dev", "/a")
    pfs.put_file("data", "dev", "/b", b"b")
    pfs.finish_commit("data", "dev")  # a branch with an open commit finishes that commit
    assert files_at(pfs, "dev") == {"/b": b"b"}
    with pytest.raises(InvalidArgument, match="no open commit"):
        pfs.finish_commit("data", "dev")


def test_finish_rebases_on_a_concurrent_commit(pfs: Pfs) -> None:
    base = pfs.put_file("data", "master", "/a", b"a")
    opened = pfs.start_commit("data", "master")
    pfs.put_file("data", opened.id, "/b", b"b")
    pfs.put_file("data", opened.id, "/a", b"+", append=True)
    # Given another commit lands on the branch while ours is open
    other = pfs.write_commit("data", "master", pfs.read_manifest(base).model_copy(
        update={"files": {**pfs.read_manifest(base).files, "/c": _entry(pfs, b"c")}}))
    assert other.parent == base.id
    # When ours finishes, Then it is replayed on the new head: linear history, nothing lost
    done = pfs.finish_commit("data", opened.id[:8])
    assert done.parent == other.id
    assert files_at(pfs, "master") == {"/a": b"a+", "/b": b"b", "/c": b"c"}
    assert [c.id for c in pfs.list_commits("data", "master")] == [done.id, other.id, base.id]


def test_second_start_commit_on_a_branch_is_refused_naming_the_open_one(
    pfs: Pfs, store: ObjectStore
) -> None:
    # Given an open commit on master (the scenario)
    first = pfs.start_commit("data", "master")
    before = snapshot(store)
    # When a second start-commit names the same branch, Then it is refused naming the open one
    with pytest.raises(Conflict, match=first.id) as refused:
        pfs.start_commit("data", "master")
    assert "'master'" in str(refused.value) and "\n" not in str(refused.value)
    assert snapshot(store) == before
    # And every verb that takes the branch means that one open commit
    assert pfs.put_file("data", "master", "/z", b"z").id == first.id
    assert pfs.finish_commit("data", "master").id == first.id
    assert read(pfs, "master", "/z") == b"z"
    assert pfs.commits.open_commits("data") == []
    assert [c.id for c in pfs.list_commits("data", "master")] == [first.id]
    # And once it is finished a new one may start, on the new head
    second = pfs.start_commit("data", "master")
    assert second.parent == first.id


def test_every_verb_agrees_on_the_open_commit_of_a_branch(pfs: Pfs) -> None:
    base = pfs.put_file("data", "master", "/a", b"a")
    opened = pfs.start_commit("data", "master")
    pfs.put_file("data", "master", "/b", b"b")
    pfs.delete_file("data", "master", "/a")
    # Reads of the branch read its head; the open commit is listed first and by id is open
    assert pfs.inspect_commit("data", "master").id == base.id
    assert set(files_at(pfs, "master")) == {"/a"}
    listed = pfs.list_commits("data", "master")
    assert [(c.id, c.finished is None) for c in listed] == [(opened.id, True), (base.id, False)]
    assert pfs.inspect_commit("data", opened.id[:8]).finished is None
    assert pfs.inspect_branch("data", "master").open_commit == opened.id
    assert pfs.finish_commit("data", opened.id[:10]).id == opened.id
    assert files_at(pfs, "master") == {"/b": b"b"}
    assert pfs.inspect_branch("data", "master").open_commit is None


def test_racing_start_commits_on_one_branch_have_one_winner(pfs: Pfs, store: ObjectStore) -> None:
    # Given 8 threads starting a commit on one branch at once
    barrier = threading.Barrier(8)
    won: list[str] = []
    lost: list[str] = []

    def start() -> None:
        barrier.wait()
        try:
            won.append(pfs.start_commit("data", "master").id)
        except Conflict as exc:
            lost.append(str(exc))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly one wins, every loser names the winner, and only its record is left
    assert len(won) == 1 and len(lost) == 7
    assert all(won[0] in message for message in lost)
    assert [key.rsplit("/", 1)[1] for key in store.list("repos/data/open/")] == won
    assert pfs.inspect_branch("data", "master").open_commit == won[0]


def test_concurrent_puts_into_one_open_commit_are_all_kept(pfs: Pfs) -> None:
    opened = pfs.start_commit("data")
    errors: list[BaseException] = []

    def put(n: int) -> None:
        try:
            for k in range(2):
                pfs.put_file("data", opened.id, f"/t{n}/{k}", f"{n}-{k}".encode())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    pfs.finish_commit("data", opened.id)
    assert len(files_at(pfs, "master")) == 16


def test_start_commit_with_explicit_parent(pfs: Pfs) -> None:
    first = pfs.put_file("data", "master", "/a", b"a")
    pfs.put_file("data", "master", "/b", b"b")
    opened = pfs.start_commit("data", "master", parent=first.id)
    pfs.put_file("data", opened.id, "/c", b"c")
    done = pfs.finish_commit("data", opened.id)
    assert done.parent == first.id
    assert set(files_at(pfs, "master")) == {"/a", "/c"}


def test_finished_commits_refuse_writes(pfs: Pfs) -> None:
    first = pfs.put_file("data", "master", "/a", b"a")
    with pytest.raises(CommitFinished, match=first.id):
        pfs.put_file("data", first.id, "/b", b"b")
    with pytest.raises(CommitFinished):
        pfs.finish_commit("data", first.id)
    with pytest.raises(CommitFinished):
        pfs.put_file("data", "master^0", "/b", b"b")
    opened = pfs.start_commit("data")
    pfs.finish_commit("data", opened.id)
    with pytest.raises(CommitFinished):
        pfs.put_file("data", opened.id, "/b", b"b")
    with pytest.raises(CommitNotFound):
        pfs.finish_commit("data", "0" * 32)


def test_finish_clash_with_concurrent_commit_is_a_conflict_and_repairable(pfs: Pfs) -> None:
    opened = pfs.start_commit("data")
    pfs.put_file("data", opened.id, "/d", b"file")
    pfs.write_commit("data", "master", Manifest(files={"/d/x": _entry(pfs, b"x")}))
    with pytest.raises(Conflict, match="'/d'"):
        pfs.finish_commit("data", opened.id)
    # The open commit is still there and can be repaired
    pfs.delete_file("data", opened.id, "/d/x")
    pfs.finish_commit("data", opened.id)
    assert files_at(pfs, "master") == {"/d": b"file"}


# ---- refs, history, diff -------------------------------------------------------------------


def test_ref_syntax(pfs: Pfs) -> None:
    c1 = pfs.put_file("data", "master", "/a", b"1")
    c2 = pfs.put_file("data", "master", "/a", b"2")
    c3 = pfs.put_file("data", "master", "/a", b"3")
    resolve = lambda ref: pfs.inspect_commit("data", ref).id  # noqa: E731
    assert resolve("master") == resolve(c3.id) == resolve(c3.id[:6]) == c3.id
    assert resolve("master^") == resolve("master~") == resolve("master~1") == c2.id
    assert resolve("master^^") == resolve("master^2") == resolve("master~2") == c1.id
    assert resolve(f"{c3.id}^") == c2.id
    assert resolve("master.1") == c1.id and resolve("master.3") == c3.id
    assert read(pfs, "master^", "/a") == b"2"
    with pytest.raises(InvalidArgument, match="cannot be mixed"):
        resolve("master^~")
    with pytest.raises(CommitNotFound):
        resolve("master~3")
    with pytest.raises(CommitNotFound):
        resolve("master.4")
    with pytest.raises(BranchNotFound, match="'nope'"):
        resolve("nope")
    with pytest.raises(CommitNotFound):
        resolve("f" * 32)
    with pytest.raises(InvalidArgument, match="invalid ref"):
        resolve("a/b")


def test_parse_ref_pure() -> None:
    assert parse_ref("b^^").back == 2 and parse_ref("b^^").base == "b"
    assert parse_ref("b^3").back == 3 and parse_ref("b~~").back == 2
    assert parse_ref("b.2").nth == 2 and parse_ref("b12").base == "b12"
    for bad in ("b^~", "b~2^", "b.0", "b^.1", "", "b c"):
        with pytest.raises(InvalidArgument):
            parse_ref(bad)


def test_list_commits_newest_first_and_limit(pfs: Pfs) -> None:
    made = [pfs.put_file("data", "master", f"/{n}", b"x") for n in range(5)]
    other = pfs.put_file("data", "dev", "/d", b"d")
    listed = pfs.list_commits("data", "master")
    assert [c.id for c in listed] == [c.id for c in reversed(made)]
    assert [c.id for c in pfs.list_commits("data", "master", limit=2)] == [made[4].id, made[3].id]
    assert {c.id for c in pfs.list_commits("data")} == {c.id for c in made} | {other.id}
    assert pfs.list_commits("data")[0].id == other.id
    with pytest.raises(BranchNotFound):
        pfs.list_commits("data", "nope")


def test_diff_file(pfs: Pfs) -> None:
    first = pfs.put_files("data", "master", [("/keep", b"k"), ("/mod", b"1"), ("/gone", b"g")])
    assert pfs.diff_file("data", "master").added == ("/gone", "/keep", "/mod")
    pfs.put_file("data", "master", "/mod", b"2")
    pfs.delete_file("data", "master", "/gone")
    pfs.put_file("data", "master", "/dir/new", b"n")
    diff = pfs.diff_file("data", "master", old_ref=first.id)
    assert diff.added == ("/dir/new",) and diff.modified == ("/mod",) and diff.deleted == ("/gone",)
    assert pfs.diff_file("data", "master").added == ("/dir/new",)
    assert pfs.diff_file("data", "master", first.id, path="/dir").added == ("/dir/new",)


# ---- branches and provenance ---------------------------------------------------------------


def test_branches(pfs: Pfs) -> None:
    c1 = pfs.put_file("data", "master", "/a", b"a")
    pfs.put_file("data", "master", "/b", b"b")
    branch = pfs.create_branch("data", "old", head="master^")
    assert branch.head == c1.id
    assert [b.name for b in pfs.list_branches("data")] == ["master", "old"]
    assert pfs.create_branch("data", "empty").head is None
    pfs.create_repo("out")
    prov = pfs.create_branch("out", "master", provenance=[BranchRef(repo="data", name="master")])
    assert prov.provenance == (BranchRef(repo="data", name="master"),)
    pfs.delete_branch("data", "old")
    assert [b.name for b in pfs.list_branches("data")] == ["empty", "master"]
    assert pfs.inspect_commit("data", c1.id).id == c1.id  # commits outlive their branch
    with pytest.raises(BranchNotFound):
        pfs.delete_branch("data", "old")
    pfs.start_commit("data", "empty")
    with pytest.raises(Conflict, match="open commit"):
        pfs.delete_branch("data", "empty")
    pfs.delete_branch("data", "empty", force=True)
    assert list(pfs.objects.list("repos/data/open/")) == []


def test_write_commit_with_provenance(pfs: Pfs) -> None:
    source = pfs.put_file("data", "master", "/in", b"in")
    pfs.create_repo("out")
    manifest = Manifest(files={"/out": _entry(pfs, b"result")})
    commit = pfs.write_commit("out", "master", manifest, provenance=[source.ref],
                              description="job 1", failed_reason=None)
    assert commit.provenance == (CommitRef(repo="data", id=source.id, branch="master"),)
    assert files_at(pfs, "master", "out") == {"/out": b"result"}
    failed = pfs.write_commit("out", "master", Manifest(), [source.ref], failed_reason="datum x")
    assert failed.parent == commit.id and failed.failed_reason == "datum x" and failed.size == 0
    rooted = pfs.write_commit("out", "side", manifest, parent=None)
    assert rooted.parent is None
    on_top = pfs.write_commit("out", "side", manifest, parent=commit.id)
    assert on_top.parent == commit.id
    assert pfs.write_commit("out", "x", manifest, parent=HEAD).parent is None


def test_write_commit_with_a_fixed_id_is_idempotent(pfs: Pfs, store: ObjectStore) -> None:
    pfs.create_repo("out")
    manifest = Manifest(files={"/r": _entry(pfs, b"r")})
    job = "ab" * 16
    # Given a call that writes the output commit, When repeated (a restarted scheduler)
    first = pfs.write_commit("out", "master", manifest, commit_id=job)
    again = pfs.write_commit("out", "master", manifest, commit_id=job)
    assert again == first and len(pfs.list_commits("out")) == 1
    # Even with commits on top, the commit is found in history, not duplicated
    pfs.put_file("out", "master", "/later", b"l")
    assert pfs.write_commit("out", "master", manifest, commit_id=job) == first
    assert len(pfs.list_commits("out")) == 2
    # Given a stale record from a crashed call (not on the branch), Then it lands on the head
    stale_id = "cd" * 16
    head = pfs.inspect_commit("out", "master")
    stale = first.model_copy(update={"id": stale_id, "parent": first.id})
    store.put(f"repos/out/commits/{stale_id}", stale.canonical_bytes())
    landed = pfs.write_commit("out", "master", manifest, commit_id=stale_id)
    assert landed.parent == head.id and pfs.inspect_commit("out", "master").id == stale_id
    with pytest.raises(InvalidArgument, match="'nothex'"):
        pfs.write_commit("out", "master", manifest, commit_id="nothex")


# ---- bulk ----------------------------------------------------------------------------------


def test_put_files_many_small_files_is_one_commit(pfs: Pfs, request: pytest.FixtureRequest) -> None:
    # (how fast: bench/storage.py's put_files rows)
    count = 100 if "s3" in request.node.callspec.id else 5000
    items = [(f"/dir{n % 10}/f{n}.txt", f"content {n}".encode()) for n in range(count)]
    commit = pfs.put_files("data", "master", items)
    assert commit.parent is None and len(pfs.list_commits("data")) == 1
    manifest = pfs.read_manifest(commit)
    assert set(manifest.files) == {path for path, _ in items}
    assert read(pfs, "master", "/dir7/f17.txt") == b"content 17"
    assert read(pfs, "master", f"/dir{(count - 1) % 10}/f{count - 1}.txt") == f"content {count - 1}".encode()


# ---- every bad input is refused and changes nothing ----------------------------------------


def test_bad_inputs_change_nothing(pfs: Pfs, store: ObjectStore, tmp_path: Path) -> None:
    first = pfs.put_files("data", "master", [("/file", b"f"), ("/dir/x", b"x")])
    opened = pfs.start_commit("data", "master")
    pfs.put_file("data", opened.id, "/o", b"o")
    pfs.create_branch("data", "side", head=first.id)
    before = snapshot(store)
    bad_calls: list[tuple[type[HerdError], str, Any]] = [
        (InvalidName, "'b@d'", lambda: pfs.create_repo("b@d")),
        (RepoNotFound, "'nope'", lambda: pfs.put_file("nope", "master", "/a", b"")),
        (InvalidPath, "'..'", lambda: pfs.put_file("data", "master", "/a/../b", b"")),
        (InvalidPath, "'a//b'", lambda: pfs.put_file("data", "master", "a//b", b"")),
        (InvalidPath, "NUL", lambda: pfs.put_file("data", "master", "/a\x00", b"")),
        (InvalidPath, "1024", lambda: pfs.put_file("data", "master", "/" + "x" * 1100, b"")),
        (InvalidPath, "'/file'", lambda: pfs.put_file("data", "master", "/file/below", b"")),
        (InvalidPath, "'/dir'", lambda: pfs.put_file("data", "master", "/dir", b"")),
        (InvalidPath, "'/p'", lambda: pfs.put_files("data", "master", [("/p", b""), ("/p/q", b"")])),
        (InvalidPath, "'/dir'", lambda: pfs.put_file("data", opened.id, "/dir", b"")),
        (InvalidArgument, "missing", lambda: pfs.put_file("data", "master", "/m", tmp_path / "missing")),
        (InvalidArgument, "source", lambda: pfs.put_file("data", "master", "/m", 42)),
        (InvalidArgument, "no files", lambda: pfs.put_files("data", "master", [])),
        (CommitFinished, first.id, lambda: pfs.put_file("data", first.id, "/n", b"")),
        (CommitNotFound, "f" * 32, lambda: pfs.put_file("data", "f" * 32, "/n", b"")),
        (InvalidArgument, "mixed", lambda: pfs.put_file("data", "master^~", "/n", b"")),
        (FileNotFound, "'/none'", lambda: pfs.delete_file("data", "side", "/none")),
        (Conflict, opened.id, lambda: pfs.start_commit("data", "master")),
        (InvalidName, "x" * 64, lambda: pfs.put_file("data", "x" * 64, "/n", b"")),
        (InvalidName, "x" * 64, lambda: pfs.start_commit("data", "x" * 64)),
        (InvalidName, "x" * 64, lambda: pfs.create_branch("data", "x" * 64)),
        (InvalidName, "'x y'", lambda: pfs.start_commit("data", "x y")),
        (BranchNotFound, "'ghost'", lambda: pfs.start_commit("data", "new", parent="ghost")),
        (BranchNotFound, "'ghost'", lambda: pfs.create_branch("data", "b", head="ghost")),
        (RepoNotFound, "'ghost'", lambda: pfs.create_branch(
            "data", "b", provenance=[BranchRef(repo="ghost", name="master")])),
        (InvalidPath, "'x'", lambda: pfs.write_commit("data", "master", Manifest(
            files={"x": FileEntry(chunks=(), size=0)}))),
        (InvalidPath, "'/f'", lambda: pfs.write_commit("data", "master", Manifest(
            files={"/f": FileEntry(chunks=(), size=0), "/f/g": FileEntry(chunks=(), size=0)}))),
        (Conflict, "--force", lambda: pfs.delete_repo("data")),
        (RepoNotFound, "'ghost'", lambda: pfs.delete_repo("ghost", force=True)),
    ]
    for error, words, call in bad_calls:
        with pytest.raises(error) as info:
            call()
        assert words in str(info.value), (words, str(info.value))
        assert snapshot(store) == before, f"{words}: the store changed"


def test_apply_ops_pure() -> None:
    entry = FileEntry(chunks=("a" * 64,), size=1)
    ops = [FileOp(op="put", path="/x", entry=entry), FileOp(op="append", path="/x", entry=entry),
           FileOp(op="delete", path="/missing")]
    result = apply_ops(Manifest(), ops)
    assert result.files["/x"].size == 2
    with pytest.raises(FileNotFound):
        apply_ops(Manifest(), ops, strict=("r", "c"))


def _entry(pfs: Pfs, data: bytes) -> FileEntry:
    digest, size = pfs.files.blobs.put_bytes(data)
    return FileEntry(chunks=(digest,), size=size)


# ---- one rule for names, on every write path -----------------------------------------------


@pytest.mark.parametrize("name", ["x" * 64, "x" * 300, "x" * 10_000, "master\n", "a.b"])
def test_every_write_path_refuses_a_name_reads_refuse(pfs: Pfs, store: ObjectStore,
                                                      name: str) -> None:
    # Given a name the read path refuses (too long, a trailing newline, a bad character)
    base = pfs.put_file("data", "master", "/a", b"a")
    before = snapshot(store)
    # Then every write that would create or name it is refused before anything is written
    writes: list[Any] = [
        lambda: pfs.create_repo(name),
        lambda: pfs.put_file("data", name, "/x", b"x"),
        lambda: pfs.put_files("data", name, [("/x", b"x"), ("/y", b"y")]),
        lambda: pfs.delete_file("data", name, "/a"),
        lambda: pfs.start_commit("data", name),
        lambda: pfs.create_branch("data", name, head=base.id),
        lambda: pfs.write_commit("data", name, Manifest()),
        lambda: pfs.delete_branch("data", name),
    ]
    for write in writes:
        with pytest.raises(InvalidArgument) as refused:
            write()
        assert "\n" not in str(refused.value).replace(name, "")
        assert snapshot(store) == before
    # And the reads agree: there is no such branch to find
    assert [b.name for b in pfs.list_branches("data")] == ["master"]
    with pytest.raises(InvalidArgument):
        pfs.list_commits("data", name)


# ---- delete-file in an open commit ---------------------------------------------------------


def test_delete_file_of_a_missing_path_in_an_open_commit_is_a_no_op(
    pfs: Pfs, store: ObjectStore
) -> None:
    base = pfs.put_file("data", "master", "/a", b"a")
    opened = pfs.start_commit("data", "master")
    pfs.put_file("data", "master", "/new", b"n")
    before = snapshot(store)
    # When a path that is nowhere is deleted in the open commit (by branch or by id)
    assert pfs.delete_file("data", "master", "/missing").id == opened.id
    assert pfs.delete_file("data", opened.id, "/missing/dir").id == opened.id
    # Then it is a no-op, as in Pachyderm 1.x: nothing is written
    assert snapshot(store) == before
    # While a delete of what is there (in the head or in the open commit) still counts
    pfs.delete_file("data", "master", "/a")
    pfs.delete_file("data", opened.id, "/new")
    pfs.put_file("data", "master", "/kept", b"k")
    done = pfs.finish_commit("data", "master")
    assert done.parent == base.id and files_at(pfs, "master") == {"/kept": b"k"}
    # A missing path on a branch without an open commit is still an error (nothing to commit)
    with pytest.raises(FileNotFound, match="'/missing'"):
        pfs.delete_file("data", "master", "/missing")


def test_no_op_delete_is_not_replayed_over_a_concurrent_commit(pfs: Pfs) -> None:
    # Given a delete of a path absent when it was made
    pfs.put_file("data", "master", "/a", b"a")
    opened = pfs.start_commit("data", "master")
    pfs.delete_file("data", opened.id, "/late")
    # When another commit adds that path before the finish (a pipeline output, say)
    head = pfs.inspect_commit("data", "master")
    files = {**pfs.read_manifest(head).files, "/late": _entry(pfs, b"late")}
    pfs.write_commit("data", "master", Manifest(files=files))
    # Then the finish keeps it: the no-op was not recorded to remove it later
    pfs.finish_commit("data", opened.id)
    assert files_at(pfs, "master") == {"/a": b"a", "/late": b"late"}


# ---- what a crash leaves, repaired by the next command (the CLI cases: test_crash_safety) ----


def test_a_claim_without_its_record_is_released(pfs: Pfs, store: ObjectStore) -> None:
    # Given a branch claiming an open commit whose record is gone (a damaged store)
    opened = pfs.start_commit("data", "master")
    store.delete(f"repos/data/open/{opened.id}")
    # Then the next command on the branch releases the claim and works
    assert pfs.commits.open_commits("data", "master") == []
    assert pfs.inspect_branch("data", "master").open_commit is None
    assert pfs.start_commit("data", "master").id != opened.id


def test_create_repo_over_leftovers_of_a_killed_delete_inherits_nothing(
    pfs: Pfs, store: ObjectStore
) -> None:
    # Given a repo whose deletion stopped right after its repo record went
    pfs.put_file("data", "master", "/a", b"a")
    old = pfs.start_commit("data", "dev")
    store.delete("repos/data/repo.json")
    # Then the repo is gone for readers, and a new one of that name starts empty
    assert [info.name for info in pfs.list_repos()] == []
    with pytest.raises(RepoNotFound):
        pfs.list_commits("data")
    pfs.create_repo("data")
    assert pfs.list_branches("data") == [] and pfs.list_commits("data") == []
    with pytest.raises(CommitNotFound):
        pfs.inspect_commit("data", old.id)
    assert list(store.list("repos/data/")) == ["repos/data/repo.json"]


@pytest.mark.s3
def test_a_write_to_a_branch_reads_the_branch_twice_on_s3(s3_store: Any) -> None:
    # Given a branch with a commit, on a real S3 endpoint (each read is a GET)
    store = s3_store("herd")
    pfs = Pfs(store)
    pfs.create_repo("data")
    pfs.put_file("data", "master", "/a", b"a")
    gets: list[str] = []
    store._client.meta.events.register(
        "before-call.s3.GetObject", lambda params, **_: gets.append(params["url_path"].rsplit("/", 2)[-2:]),
    )
    # When a file is put, one deleted and one copied onto it (whose source is read on the
    # branch too: a third read)
    for write, reads in ((lambda: pfs.put_file("data", "master", "/b", b"b"), 2),
                         (lambda: pfs.delete_file("data", "master", "/a"), 2),
                         (lambda: pfs.copy_file("data", "master", "/b", "data", "master", "/c"), 3)):
        gets.clear()
        write()
        # Then each read the branch once to find where the write goes (and its head for the
        # dry run before an upload), and once more in its compare-and-set
        assert gets.count(["branches", "master"]) == reads, gets
    assert files_at(pfs, "master") == {"/b": b"b", "/c": b"b"}


@pytest.mark.s3
def test_list_repos_reads_each_repo_record_once_on_s3(s3_store: Any) -> None:
    # Given three repos on a real S3 endpoint
    store = s3_store("herd")
    pfs = Pfs(store)
    for name in ("a", "b", "c"):
        pfs.create_repo(name)
        pfs.put_file(name, "master", "/f", name.encode() * 3)
    gets: list[str] = []
    store._client.meta.events.register("before-call.s3.GetObject", lambda params, **_: gets.append(params["url_path"]))
    # When they are listed; Then each repo's record is read once, and each has its size
    infos = pfs.list_repos()
    assert [(info.name, info.size) for info in infos] == [("a", 3), ("b", 3), ("c", 3)]
    assert sorted(path.rsplit("/", 2)[-2] for path in gets if path.endswith("/repo.json")) == ["a", "b", "c"]
