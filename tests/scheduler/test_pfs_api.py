"""HerdPfs: the file verbs that once reached into storage from the CLI, as API methods, on every
store (memory, local folder, S3 over HTTP); and `rebased`, pure."""

from __future__ import annotations

import io
from typing import Any

import pytest

from scheduler.pfs_api import HerdPfs, rebased
from storage.errors import FileNotFound, InvalidArgument
from storage.model import FileEntry, Manifest
from tests.fixtures.s3 import object_store, s3_store  # noqa: F401 - fixtures


@pytest.fixture
def pfs(object_store: Any) -> HerdPfs:
    pfs = HerdPfs(object_store)
    pfs.create_repo("data")
    pfs.put_files("data", "master", [("/a/x.csv", b"1\n"), ("/a/y.csv", b"2\n"), ("/b.txt", b"b")])
    pfs.create_repo("other")
    pfs.put_files("other", "master", [("/in/x.csv", b"1\n"), ("/in/y.csv", b"changed\n"), ("/in/z.csv", b"3\n")])
    return pfs


def test_glob_file_matches_files_and_directories(pfs: HerdPfs) -> None:
    assert [(i.path, i.type, i.size) for i in pfs.glob_file("data", "master", "/*")] == [
        ("/a", "dir", 4), ("/b.txt", "file", 1)]
    assert [i.path for i in pfs.glob_file("data", "master", "/a/*.csv")] == ["/a/x.csv", "/a/y.csv"]
    with pytest.raises(InvalidArgument):
        pfs.glob_file("data", "master", "[")


def test_diff_paths_compares_another_repo_at_another_path(pfs: HerdPfs) -> None:
    diff = pfs.diff_paths("other", "master", "/in", "data", "master", "/a")
    assert (diff.added, diff.modified, diff.deleted) == (("/in/z.csv",), ("/in/y.csv",), ())
    same = pfs.diff_paths("data", "master", "/", "data", "master", "/")
    assert (same.added, same.modified, same.deleted) == ((), (), ())
    with pytest.raises(FileNotFound, match="nope"):
        pfs.diff_paths("other", "master", "/in", "data", "master", "/nope")


def test_put_split_is_one_commit(pfs: HerdPfs) -> None:
    before = len(pfs.list_commits("data"))
    pfs.put_split("data", "master", [("/rows", io.BytesIO(b"1\n2\n3\n"), "stdin")], "line", target_datums=2)
    assert [i.path for i in pfs.list_file("data", "master", "/rows")] == ["/rows/0000000000000000",
                                                                          "/rows/0000000000000001"]
    assert len(pfs.list_commits("data")) == before + 1


def test_walk_file_lists_every_file_below_of_one_commit(pfs: HerdPfs) -> None:
    files = pfs.walk_file("data", "master", "/")
    assert [i.path for i in files] == ["/a/x.csv", "/a/y.csv", "/b.txt"]
    assert {i.commit for i in files} == {pfs.inspect_commit("data", "master").id}
    assert [i.path for i in pfs.walk_file("data", "master", "/b.txt")] == ["/b.txt"]
    with pytest.raises(FileNotFound):
        pfs.walk_file("data", "master", "/nope")


def test_rebased_moves_a_directory_or_a_file() -> None:
    one, two = FileEntry(chunks=("a" * 64,), size=1), FileEntry(chunks=("b" * 64,), size=2)
    manifest = Manifest(files={"/old/x": one, "/old/d/y": two, "/elsewhere": one})
    assert rebased(manifest, "/old", "/new").files == {"/new/x": one, "/new/d/y": two}
    assert rebased(manifest, "/old/x", "/file").files == {"/file": one}
    assert rebased(manifest, "/old", "/old") == manifest
