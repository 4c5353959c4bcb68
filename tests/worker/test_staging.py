"""stage_datum lays out /pfs from blobs; clear_pfs empties it for the next datum."""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.records import PlannedInput
from storage.blobs import BlobStore
from storage.errors import DataCorrupted, InvalidArgument, InvalidPath
from storage.local import LocalObjectStore
from storage.model import FileEntry
from storage.objects import MemoryObjectStore
from worker.docker_runner import FolderInputs
from worker.staging import clear_pfs, detach_hard_links, empty_for_reuse, read_datum, stage_datum


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


@pytest.mark.parametrize("parts", [(b"one chunk",), (b"two ", b"chunks")])
def test_staged_files_never_share_an_inode_with_a_blob(local_blobs: BlobStore, tmp_path: Path, parts: tuple) -> None:
    # Given a file of a local store, When staged
    file = entry(local_blobs, *parts)
    stage_datum(local_blobs, [Input("in", {"/f": file})], tmp_path / "pfs")
    staged = tmp_path / "pfs" / "in" / "f"
    # Then it is a private copy: its own inode, one link, and writing it leaves the blob alone
    blob_inodes = {os.stat(local_blobs.local_path(chunk)).st_ino for chunk in file.chunks}  # type: ignore[arg-type]
    assert os.stat(staged).st_ino not in blob_inodes and os.stat(staged).st_nlink == 1
    staged.write_bytes(b"changed")
    stored = io.BytesIO()
    for chunk in file.chunks:
        local_blobs.write_to(chunk, stored)
    assert stored.getvalue() == b"".join(parts)


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


def test_two_inputs_with_one_name_share_its_folder(blobs: BlobStore, tmp_path: Path) -> None:
    # A group's datum holds several matches of one input; a file two matches share is staged once.
    shared = entry(blobs, b"s")
    staged = stage_datum(blobs, [Input("in", {"/a": entry(blobs, b"a"), "/d/s": shared}),
                                 Input("in", {"/b": entry(blobs, b"b"), "/d/s": shared})], tmp_path)
    assert staged == 3 and (tmp_path / "in" / "d" / "s").read_bytes() == b"s"
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["a", "b", "d"]


def test_file_and_directory_clash_is_refused(blobs: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidPath):
        stage_datum(blobs, [Input("in", {"/a": entry(blobs, b"a"), "/a/b": entry(blobs, b"b")})], tmp_path)


def test_clear_pfs_removes_the_datum_folder(blobs: BlobStore, tmp_path: Path) -> None:
    # Given a staged datum and output left by user code, some of it read-only
    pfs = tmp_path / "pfs"
    stage_datum(blobs, [Input("in", {"/a/b": entry(blobs, b"b")})], pfs)
    locked = pfs / "out" / "locked"
    (locked / "deep").mkdir(parents=True)
    (locked / "deep" / "f").write_text("x")
    locked.chmod(0o500)
    (pfs / "in").chmod(0o500)
    # When cleared, Then nothing of it remains (the next datum gets a fresh folder)
    clear_pfs(pfs)
    assert not pfs.exists()


def test_clear_pfs_of_a_missing_folder_is_fine(tmp_path: Path) -> None:
    clear_pfs(tmp_path / "nothing")


def test_detach_hard_links(tmp_path: Path) -> None:
    # Given an input some caller hard-linked to a precious file
    precious = tmp_path / "blob"
    precious.write_bytes(b"blob")
    (tmp_path / "pfs" / "in").mkdir(parents=True)
    os.link(precious, tmp_path / "pfs" / "in" / "f")
    # When detached, Then writing the input leaves the file alone
    assert detach_hard_links(tmp_path / "pfs") == 1
    (tmp_path / "pfs" / "in" / "f").write_bytes(b"changed")
    assert precious.read_bytes() == b"blob"


def test_a_reused_folder_shows_only_this_datums_inputs(blobs: BlobStore, tmp_path: Path) -> None:
    # Given a folder a datum of inputs `a` and `b` used, emptied for reuse (its folders kept)
    pfs = tmp_path / "pfs"
    stage_datum(blobs, [Input("a", {"/x": entry(blobs, b"1")}), Input("b", {"/y": entry(blobs, b"2")})], pfs)
    assert empty_for_reuse(pfs, pfs.stat().st_mode & 0o7777)
    assert sorted(p.name for p in pfs.iterdir()) == ["a", "b", "out"]
    # When the next datum has input `a` only
    stage_datum(blobs, [Input("a", {"/z": entry(blobs, b"3")})], pfs)
    # Then /pfs holds `a` with its own file and an empty out/, as a fresh folder would
    assert sorted(p.name for p in pfs.iterdir()) == ["a", "out"]
    assert tree(pfs) == {"/a/z": b"3"}


# -- read_datum: the same inputs read into memory, for a runtime that only sends them on --------

def walked(pfs: Path) -> tuple[tuple[str, bytes | None], ...]:
    """What a walk of a staged folder gives a runtime (worker.docker_runner.FolderInputs)."""
    inputs = FolderInputs(pfs)
    return tuple((rel, None if kind == "dir" else b"".join(inputs.chunks(rel, size))) for rel, kind, size in inputs.walk())


_NAMES = st.sampled_from(["in", "b", "in_2"])
_PATHS = st.lists(st.sampled_from(["a", "b", "a-b", "c.d"]), min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
_BODIES = st.lists(st.binary(max_size=30), min_size=1, max_size=3)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.lists(st.tuples(_NAMES, st.dictionaries(_PATHS, _BODIES, max_size=5), st.booleans()), max_size=3))
def test_inputs_read_into_memory_are_what_a_walk_of_the_staged_folder_gives(
    blobs: BlobStore, data: list[tuple[str, dict[str, list[bytes]], bool]],
) -> None:
    # Given any datum's inputs (overlapping names and paths, clashes, files staged empty)
    inputs = [Input(name, {path: entry(blobs, *parts) for path, parts in files.items()}, empty)
              for name, files, empty in data]
    # When they are staged on disk and read into memory
    with tempfile.TemporaryDirectory() as folder:
        try:
            staged: object = stage_datum(blobs, inputs, Path(folder) / "pfs")
            expected: object = walked(Path(folder) / "pfs")
        except InvalidPath as exc:
            staged = expected = type(exc)
    try:
        got: object = read_datum(blobs, inputs, limit=1 << 20)
    except InvalidPath as exc:
        got = type(exc)
    # Then both refuse the same datums, and otherwise give the same entries and bytes
    assert got == expected
    if isinstance(got, tuple):
        assert staged == sum(len(body) for _, body in got if body is not None)


def test_inputs_past_the_limit_are_not_read_into_memory(blobs: BlobStore) -> None:
    inputs = [Input("in", {"/a": entry(blobs, b"12"), "/b": entry(blobs, b"345")})]
    assert read_datum(blobs, inputs, limit=4) is None
    assert read_datum(blobs, inputs, limit=5) == (("in", None), ("in/a", b"12"), ("in/b", b"345"))
    empty = [Input("in", {"/a": entry(blobs, b"12345")}, empty_files=True)]
    assert read_datum(blobs, empty, limit=0) == (("in", None), ("in/a", b""))  # files staged empty weigh nothing


@pytest.mark.parametrize("path", ["/../escape", "/a/../../escape", "/a//b", "/a\x00b"])
def test_paths_escaping_are_refused_in_memory_too(blobs: BlobStore, path: str) -> None:
    with pytest.raises(InvalidPath):
        read_datum(blobs, [Input("in", {path: entry(blobs, b"x")})], limit=100)


@pytest.mark.parametrize("name", ["..", "a/b", "out", ""])
def test_bad_input_names_are_refused_in_memory_too(blobs: BlobStore, name: str) -> None:
    with pytest.raises(InvalidArgument):
        read_datum(blobs, [Input(name, {"/f": entry(blobs, b"x")})], limit=100)


def test_a_corrupted_input_is_never_read_into_memory(local_blobs: BlobStore, tmp_path: Path) -> None:
    # Given an input whose stored blob was changed on disk after it was written
    body = b"precious input " * 10
    digest, _ = local_blobs.put_bytes(body)
    blob = local_blobs.local_path(digest)
    assert blob is not None
    os.chmod(blob, 0o644)
    blob.write_bytes(b"tampered input " * 10)
    # When it is read for a datum, Then its hash check refuses it
    with pytest.raises(DataCorrupted):
        read_datum(local_blobs, [Input("in", {"/f": FileEntry(chunks=(digest,), size=len(body))})], limit=1 << 20)
