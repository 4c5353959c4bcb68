"""Issue 14's pfs verbs in the porcelain, over memory, a local folder and moto's S3 server:
copy-file, set-branch (open commits allowed), delete-commit, list-commit --from, subscribe's
walk, and reading open commits. Refused calls are checked to change nothing."""

from __future__ import annotations

import pytest

from storage.errors import (
    CommitFinished,
    CommitNotFound,
    Conflict,
    FileNotFound,
    InvalidPath,
)
from storage.model import CommitRef
from storage.objects import ObjectStore
from storage.repos import Pfs


@pytest.fixture
def store(object_store: ObjectStore) -> ObjectStore:
    return object_store


@pytest.fixture
def pfs(store: ObjectStore) -> Pfs:
    pfs = Pfs(store)
    pfs.create_repo("data")
    pfs.create_repo("other")
    pfs.put_file("data", "master", "/a.txt", b"one")
    pfs.put_file("data", "master", "/dir/b.txt", b"two\n")
    pfs.put_file("data", "master", "/dir/sub/c.txt", b"three")
    return pfs


def snapshot(store: ObjectStore) -> dict[str, bytes]:
    return {key: store.get(key) for key in store.list("") if not key.startswith("_herd/")}


def read(pfs: Pfs, ref: str, path: str, repo: str = "data") -> bytes:
    with pfs.open_file(repo, ref, path) as handle:
        return handle.read()


def files(pfs: Pfs, ref: str, repo: str = "data") -> dict[str, bytes]:
    commit = pfs.inspect_commit(repo, ref)
    return {path: read(pfs, commit.id, path, repo) for path in pfs.read_manifest(commit).files}


# ---- copy-file -----------------------------------------------------------------------------


def test_copy_file_within_a_repo_makes_one_commit(pfs: Pfs) -> None:
    head = pfs.inspect_commit("data", "master")
    copied = pfs.copy_file("data", "master", "/a.txt", "data", "master", "/copy.txt")
    assert copied.parent == head.id
    assert read(pfs, "master", "/copy.txt") == b"one"
    assert read(pfs, "master", "/a.txt") == b"one"


def test_copy_file_across_repos_and_directories(pfs: Pfs) -> None:
    # Pachyderm 1.x copies between repos (source read, destination written) and whole directories
    pfs.copy_file("data", "master", "/dir", "other", "dev", "/in")
    assert files(pfs, "dev", "other") == {"/in/b.txt": b"two\n", "/in/sub/c.txt": b"three"}
    pfs.copy_file("data", "master", "/", "other", "master", "/")
    assert files(pfs, "master", "other") == files(pfs, "master")


def test_copy_file_appends_to_an_existing_file_unless_overwrite(pfs: Pfs) -> None:
    pfs.copy_file("data", "master", "/a.txt", "data", "master", "/dir/b.txt")
    assert read(pfs, "master", "/dir/b.txt") == b"two\none"
    pfs.copy_file("data", "master", "/a.txt", "data", "master", "/dir/b.txt", overwrite=True)
    assert read(pfs, "master", "/dir/b.txt") == b"one"


def test_copy_file_overwrite_replaces_a_whole_directory(pfs: Pfs) -> None:
    pfs.put_file("other", "master", "/in/old.txt", b"old")
    pfs.copy_file("data", "master", "/dir", "other", "master", "/in", overwrite=True)
    assert files(pfs, "master", "other") == {"/in/b.txt": b"two\n", "/in/sub/c.txt": b"three"}


def test_copy_file_from_a_missing_path_names_it_and_changes_nothing(pfs: Pfs, store: ObjectStore) -> None:
    before = snapshot(store)
    with pytest.raises(FileNotFound, match="/nope"):
        pfs.copy_file("data", "master", "/nope", "data", "master", "/x")
    with pytest.raises(FileNotFound, match="/nope"):
        pfs.copy_file("data", "master", "/nope", "other", "master", "/x")
    assert snapshot(store) == before


def test_copy_file_refusals_change_nothing(pfs: Pfs, store: ObjectStore) -> None:
    head = pfs.inspect_commit("data", "master").id
    before = snapshot(store)
    with pytest.raises(CommitFinished, match=head):  # a finished commit cannot take writes
        pfs.copy_file("data", "master", "/a.txt", "data", head, "/x")
    with pytest.raises(InvalidPath, match="/dir"):  # a file where a directory is
        pfs.copy_file("data", "master", "/a.txt", "data", "master", "/dir")
    with pytest.raises(CommitNotFound):
        pfs.copy_file("data", "master^^^^", "/a.txt", "data", "master", "/x")
    assert snapshot(store) == before


def test_copy_file_into_and_out_of_an_open_commit(pfs: Pfs) -> None:
    opened = pfs.start_commit("other", "master")
    pfs.put_file("other", opened.id, "/wip.txt", b"wip")
    # The source may be open (its tree as it would be finished now); the target's open commit
    # takes the copy, which shows only when it is finished
    pfs.copy_file("other", opened.id, "/wip.txt", "other", "master", "/again.txt")
    pfs.copy_file("data", "master", "/a.txt", "other", "master", "/a.txt")
    assert pfs.list_commits("other", "master")[0].id == opened.id
    pfs.finish_commit("other", opened.id)
    assert files(pfs, "master", "other") == {"/wip.txt": b"wip", "/again.txt": b"wip", "/a.txt": b"one"}


# ---- set-branch / create-branch --head -----------------------------------------------------


def test_set_branch_to_a_finished_commit(pfs: Pfs) -> None:
    first = pfs.inspect_commit("data", "master.1")
    branch = pfs.set_branch("data", first.id, "old")
    assert branch.head == first.id
    assert files(pfs, "old") == {"/a.txt": b"one"}


def test_set_branch_to_an_open_commit_then_put_file_on_the_branch(pfs: Pfs) -> None:
    head = pfs.inspect_commit("data", "master")
    opened = pfs.start_commit("data", "master")
    # Given a branch set to master's open commit (1.4's SetBranch)
    branch = pfs.set_branch("data", opened.id, "staging")
    assert branch.open_commit == opened.id and branch.head == head.id
    # When put-file names the branch, Then the file goes into that open commit
    joined = pfs.put_file("data", "staging", "/new.txt", b"new")
    assert joined.id == opened.id
    assert pfs.inspect_commit("data", "staging").id == head.id  # the head it builds on
    assert [c.id for c in pfs.list_commits("data")][:1] == [opened.id]  # listed once
    assert len([c for c in pfs.list_commits("data") if c.id == opened.id]) == 1
    # When finished through the follower, Then both branches point at it
    pfs.finish_commit("data", "staging")
    assert pfs.inspect_commit("data", "master").id == opened.id
    assert pfs.inspect_commit("data", "staging").id == opened.id
    assert read(pfs, "staging", "/new.txt") == b"new"
    assert pfs.inspect_branch("data", "staging").open_commit is None


def test_a_branch_with_its_own_open_commit_is_not_set_to_another(pfs: Pfs, store: ObjectStore) -> None:
    opened = pfs.start_commit("data", "master")
    own = pfs.start_commit("data", "dev")
    before = snapshot(store)
    with pytest.raises(Conflict, match=own.id):
        pfs.create_branch("data", "dev", head=opened.id)
    assert snapshot(store) == before


def test_deleting_a_follower_keeps_the_owners_open_commit(pfs: Pfs) -> None:
    opened = pfs.start_commit("data", "master")
    pfs.set_branch("data", opened.id, "staging")
    pfs.delete_branch("data", "staging", force=True)
    pfs.put_file("data", "master", "/x", b"x")
    assert pfs.finish_commit("data", "master").id == opened.id


def test_a_follower_whose_commit_landed_moves_onto_it(pfs: Pfs, store: ObjectStore) -> None:
    # Given a follower claim that outlived the open record (as a finish killed after landing
    # on the owner, with the record removed, would leave it)
    opened = pfs.start_commit("data", "master")
    pfs.set_branch("data", opened.id, "staging")
    pfs.commits._land(pfs.commits.read_open("data", opened.id))  # noqa: SLF001 - the crash's state
    store.delete(f"repos/data/open/{opened.id}")
    # When the follower is next read, Then it points at the landed commit
    assert pfs.inspect_branch("data", "staging").head == opened.id
    assert pfs.inspect_branch("data", "staging").open_commit is None


def test_deleting_an_open_commit_releases_its_followers(pfs: Pfs) -> None:
    head = pfs.inspect_commit("data", "master").id
    opened = pfs.start_commit("data", "master")
    pfs.set_branch("data", opened.id, "staging")
    pfs.delete_commit("data", opened.id)
    assert pfs.inspect_branch("data", "staging").open_commit is None
    assert pfs.inspect_branch("data", "staging").head == head
    assert pfs.list_commits("data", "master")[0].id == head


# ---- delete-commit -------------------------------------------------------------------------


def test_delete_commit_of_a_branch_head_moves_the_branch_to_its_parent(pfs: Pfs) -> None:
    head = pfs.inspect_commit("data", "master")
    pfs.set_branch("data", head.id, "also")
    deleted = pfs.delete_commit("data", "master")
    assert deleted.id == head.id
    assert pfs.inspect_branch("data", "master").head == head.parent
    assert pfs.inspect_branch("data", "also").head == head.parent
    with pytest.raises(CommitNotFound, match=head.id):
        pfs.inspect_commit("data", head.id)
    assert "/dir/sub/c.txt" not in files(pfs, "master")


def test_delete_commit_with_a_child_is_refused_naming_both(pfs: Pfs, store: ObjectStore) -> None:
    middle = pfs.inspect_commit("data", "master^")
    head = pfs.inspect_commit("data", "master")
    before = snapshot(store)
    with pytest.raises(Conflict, match=f"'{middle.id}'.*child commit '{head.id}'"):
        pfs.delete_commit("data", middle.id)
    assert snapshot(store) == before


def test_delete_commit_below_an_open_commit_is_refused(pfs: Pfs, store: ObjectStore) -> None:
    opened = pfs.start_commit("data", "master")
    before = snapshot(store)
    with pytest.raises(Conflict, match=opened.id):
        pfs.delete_commit("data", "master")
    assert snapshot(store) == before


def test_delete_commit_in_downstream_provenance_is_refused(pfs: Pfs, store: ObjectStore) -> None:
    head = pfs.inspect_commit("data", "master")
    from storage.model import Manifest

    out = pfs.write_commit("other", "master", Manifest(), provenance=[CommitRef(repo="data", id=head.id)])
    before = snapshot(store)
    with pytest.raises(Conflict, match=f"'{head.id}'.*provenance of commit '{out.id}' in repo 'other'"):
        pfs.delete_commit("data", head.id)
    assert snapshot(store) == before


def test_delete_the_only_commit_empties_the_branch(pfs: Pfs) -> None:
    only = pfs.put_file("other", "master", "/x", b"x")
    pfs.delete_commit("other", only.id[:8])
    assert pfs.inspect_branch("other", "master").head is None
    assert pfs.list_commits("other") == []


def test_delete_an_open_commit_frees_its_branch(pfs: Pfs) -> None:
    opened = pfs.start_commit("data", "master")
    pfs.put_file("data", opened.id, "/x", b"x")
    pfs.delete_commit("data", opened.id)
    assert pfs.inspect_branch("data", "master").open_commit is None
    assert pfs.start_commit("data", "master").id != opened.id


# ---- list-commit --from, subscribe's walk --------------------------------------------------


def test_list_commits_from_lists_only_newer_ones(pfs: Pfs) -> None:
    history = [c.id for c in pfs.list_commits("data", "master")]
    assert [c.id for c in pfs.list_commits("data", "master", since=history[-1])] == history[:-1]
    assert [c.id for c in pfs.list_commits("data", "master", since=history[0])] == []
    assert [c.id for c in pfs.list_commits("data", since="master^")] == history[:1]
    assert [c.id for c in pfs.list_commits("data", "master", limit=1, since=history[-1])] == history[:1]


def test_commits_after_walks_oldest_first(pfs: Pfs) -> None:
    history = [c.id for c in pfs.list_commits("data", "master")]
    head, found = pfs.commits_after("data", "master", None)
    assert head == history[0] and [c.id for c in found] == history[::-1]
    assert pfs.commits_after("data", "master", history[-1])[1][0].id == history[1]
    assert pfs.commits_after("data", "master", head)[1] == []
    assert pfs.commits_after("data", "nobranch", None) == (None, [])
    # a seen commit no longer in the history (the branch moved elsewhere): only the new head
    other = pfs.put_file("data", "side", "/s", b"s")
    assert [c.id for c in pfs.commits_after("data", "side", head)[1]] == [other.id]


# ---- reading open commits ------------------------------------------------------------------


def test_open_commit_reads_show_its_tree_as_if_finished_now(pfs: Pfs) -> None:
    opened = pfs.start_commit("data", "master")
    pfs.put_file("data", opened.id, "/new.txt", b"new")
    pfs.delete_file("data", opened.id, "/a.txt")
    assert read(pfs, opened.id, "/new.txt") == b"new"
    assert [i.path for i in pfs.list_file("data", opened.id)] == ["/dir", "/new.txt"]
    with pytest.raises(FileNotFound, match="/a.txt"):
        read(pfs, opened.id, "/a.txt")
    assert read(pfs, "master", "/a.txt") == b"one"  # the branch still reads its head
