"""stage_datum lays out /pfs from blobs; clear_pfs empties it for the next datum."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scheduler.records import PlannedInput
from storage.blobs import BlobStore
from storage.errors import InvalidArgument, InvalidPath
from storage.local import LocalObjectStore
from storage.model import FileEntry
from storage.objects import MemoryObjectStore
from worker.staging import clear_pfs, detach_hard_links, stage_datum


@dataclass
class Input:
    name: str
    files: dict[str, FileEntry] = field(default_factory=dict)
    empty_files: bool = False


@pytest.fixture(params=["local", "memory"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return BlobStore(LocalObjectStore(tmp_path / "store"))
    return BlobStore(MemoryObjectStore())


@pytest.fixture
def local_blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(LocalObjectStore(tmp_path / "store"))


def entry(blobs: BlobStore, *parts: bytes) -> FileEntry:
    chunks = [blobs.put_bytes(part)[0] for part in parts]
    return FileEntry(chunks=tuple(chunks), size=sum(len(part) for part in parts))


def tree(folder: Path) -> dict[str, bytes]:
    return {
        "/" + str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()
    }


def test_layout_for_file_directory_and_root_matches(blobs: BlobStore, tmp_path: Path) -> None:
    # Given three inputs: a file match, a directory match and the whole repo
    pfs = tmp_path / "pfs"
    inputs = [
        Input("one", {"/a/b.txt": entry(blobs, b"B")}),
        Input("dir", {"/d/1": entry(blobs, b"1"), "/d/e/2": entry(blobs, b"22")}),
        Input("all", {"/top": entry(blobs, b"T"), "/x/y/z": entry(blobs, b"Z")}),
    ]
    # When staged
    staged = stage_datum(blobs, inputs, pfs)
    # Then every file sits at /pfs/<input>/<original path> and out/ is empty
    assert tree(pfs) == {
        "/one/a/b.txt": b"B", "/dir/d/1": b"1", "/dir/d/e/2": b"22", "/all/top": b"T", "/all/x/y/z": b"Z",
    }
    assert staged == 6
    assert (pfs / "out").is_dir() and not any((pfs / "out").iterdir())


def test_multi_chunk_files_are_concatenated(blobs: BlobStore, tmp_path: Path) -> None:
    stage_datum(blobs, [Input("in", {"/f": entry(blobs, b"ab", b"cd", b"ab")})], tmp_path)
    assert (tmp_path / "in" / "f").read_bytes() == b"abcdab"


def test_local_blobs_are_hard_linked(local_blobs: BlobStore, tmp_path: Path) -> None:
    file = entry(local_blobs, b"linked bytes")
    stage_datum(local_blobs, [Input("in", {"/f": file})], tmp_path / "pfs")
    blob = local_blobs.local_path(file.chunks[0])
    assert blob is not None
    assert os.stat(tmp_path / "pfs" / "in" / "f").st_ino == os.stat(blob).st_ino


def test_link_false_copies(local_blobs: BlobStore, tmp_path: Path) -> None:
    file = entry(local_blobs, b"copied bytes")
    stage_datum(local_blobs, [Input("in", {"/f": file})], tmp_path / "pfs", link=False)
    staged = tmp_path / "pfs" / "in" / "f"
    assert staged.read_bytes() == b"copied bytes"
    assert os.stat(staged).st_ino != os.stat(local_blobs.local_path(file.chunks[0])).st_ino  # type: ignore[arg-type]


def test_memory_store_streams(tmp_path: Path) -> None:
    blobs = BlobStore(MemoryObjectStore())
    big = os.urandom(3 * 1024 * 1024)
    stage_datum(blobs, [Input("in", {"/big": entry(blobs, big)})], tmp_path)
    assert (tmp_path / "in" / "big").read_bytes() == big


def test_empty_files_creates_empty_files(blobs: BlobStore, tmp_path: Path) -> None:
    inputs = [Input("in", {"/a": entry(blobs, b"xyz"), "/d/b": entry(blobs, b"q")}, empty_files=True)]
    assert stage_datum(blobs, inputs, tmp_path / "pfs") == 0
    assert tree(tmp_path / "pfs") == {"/in/a": b"", "/in/d/b": b""}


def test_planned_input_fits(blobs: BlobStore, tmp_path: Path) -> None:
    planned = PlannedInput(name="in", repo="r", branch="master", commit="c", path="/f", files={"/f": entry(blobs, b"F")})
    stage_datum(blobs, [planned], tmp_path)
    assert (tmp_path / "in" / "f").read_bytes() == b"F"


@pytest.mark.parametrize("path", ["/../escape", "/a/../../escape", "/a//b", "/a\x00b"])
def test_paths_escaping_are_refused(blobs: BlobStore, tmp_path: Path, path: str) -> None:
    with pytest.raises(InvalidPath):
        stage_datum(blobs, [Input("in", {path: entry(blobs, b"x")})], tmp_path / "pfs")
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("name", ["..", "a/b", "out", ""])
def test_bad_input_names_are_refused(blobs: BlobStore, tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidArgument):
        stage_datum(blobs, [Input(name, {"/f": entry(blobs, b"x")})], tmp_path / "pfs")


def test_two_inputs_with_one_name_are_refused(blobs: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidPath, match="two inputs"):
        stage_datum(blobs, [Input("in", {"/a": entry(blobs, b"a")}), Input("in", {"/b": entry(blobs, b"b")})], tmp_path)


def test_file_and_directory_clash_is_refused(blobs: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidPath):
        stage_datum(blobs, [Input("in", {"/a": entry(blobs, b"a"), "/a/b": entry(blobs, b"b")})], tmp_path)


def test_clear_pfs_keeps_the_two_folders_and_removes_the_rest(blobs: BlobStore, tmp_path: Path) -> None:
    # Given a staged datum and output left by user code, some of it read-only
    pfs = tmp_path / "pfs"
    stage_datum(blobs, [Input("in", {"/a/b": entry(blobs, b"b")})], pfs)
    locked = pfs / "out" / "locked"
    (locked / "deep").mkdir(parents=True)
    (locked / "deep" / "f").write_text("x")
    locked.chmod(0o500)
    before = (os.stat(pfs).st_ino, os.stat(pfs / "out").st_ino)
    # When cleared
    clear_pfs(pfs)
    # Then only the two folders remain, with the same inodes (warm sandboxes bind them)
    assert sorted(p.name for p in pfs.iterdir()) == ["out"]
    assert not any((pfs / "out").iterdir())
    assert (os.stat(pfs).st_ino, os.stat(pfs / "out").st_ino) == before


def test_clear_pfs_of_a_missing_folder_is_fine(tmp_path: Path) -> None:
    clear_pfs(tmp_path / "nothing")


def test_detach_hard_links(local_blobs: BlobStore, tmp_path: Path) -> None:
    file = entry(local_blobs, b"blob")
    pfs = tmp_path / "pfs"
    stage_datum(local_blobs, [Input("in", {"/f": file})], pfs)
    assert detach_hard_links(pfs) == 1
    (pfs / "in" / "f").write_bytes(b"changed")
    assert local_blobs.get_bytes(file.chunks[0]) == b"blob"
