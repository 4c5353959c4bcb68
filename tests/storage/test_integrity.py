"""Verified reads and corrupt records, over memory, the local folder and moto S3 (over HTTP).

Damage is made the way a disk, an operator or an attacker would: by overwriting the stored
object in place, bypassing content addressing. Every read path must then refuse the bytes
with DataCorrupted naming what is damaged, and leave no file (or temp file) behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.blobs import CHUNK, BlobStore
from storage.errors import DataCorrupted, HerdError, InvalidPath, ObjectNotFound
from storage.layout import blob_key, branch_key, commit_key, manifest_key, open_key, repo_key
from storage.model import Branch, Commit, FileEntry, Manifest, Repo
from storage.objects import ObjectStore
from storage.ops import OpenCommit
from storage.repos import Pfs

BIG = 2 * CHUNK + 5  # more than one block: the threaded-hash path and the held-back last block


def payload(size: int, seed: int = 0) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (size // 32) + b"z" * (size % 32)


def rewrite(objects: ObjectStore, key: str, change: Callable[[bytes], bytes]) -> None:
    """Overwrite a stored object in place (what bit rot or a hostile operator does)."""
    objects.put(key, change(objects.get(key)))


def flip_first(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


def flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x80])


def truncate(data: bytes) -> bytes:
    return data[:-1]


def extend(data: bytes) -> bytes:
    return data + b"!"


DAMAGE = {"flip-first": flip_first, "flip-last": flip_last, "short": truncate, "long": extend}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def pfs(object_store: ObjectStore) -> Pfs:
    pfs = Pfs(object_store)
    pfs.create_repo("data")
    return pfs


# ---- the blob layer ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [10, BIG])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_every_blob_read_refuses_damaged_bytes(
    object_store: ObjectStore, tmp_path: Path, size: int, damage: str
) -> None:
    # Given a stored blob whose bytes were changed in place
    blobs = BlobStore(object_store)
    data = payload(size)
    digest, _ = blobs.put_bytes(data)
    rewrite(object_store, blob_key(digest), DAMAGE[damage])
    out = tmp_path / "out"
    out.mkdir()
    # When it is read in every way; Then each raises DataCorrupted naming the blob
    for read in (
        lambda: blobs.get_file(digest, out / "copy"),
        lambda: blobs.write_to(digest, io.BytesIO()),
        lambda: blobs.verify(digest),
        lambda: _read_all(blobs, digest),
    ):
        with pytest.raises(DataCorrupted, match=digest) as caught:
            read()
        assert caught.value.blob == digest  # type: ignore[attr-defined]
        assert "\n" not in caught.value.message
    # And get_file left no file and no temp file
    assert leftovers(out) == []


def _read_all(blobs: BlobStore, digest: str) -> bytes:
    with blobs.open(digest) as reader:
        return reader.read()


@pytest.mark.parametrize("size", [10, CHUNK, BIG])
def test_a_stream_never_hands_out_the_damaged_last_block(object_store: ObjectStore, size: int) -> None:
    # Given a blob whose LAST byte was flipped
    blobs = BlobStore(object_store)
    data = payload(size, seed=2)
    digest, _ = blobs.put_bytes(data)
    rewrite(object_store, blob_key(digest), flip_last)
    # When a consumer reads it in small pieces
    handed = bytearray()
    with pytest.raises(DataCorrupted), blobs.open(digest) as reader:
        while piece := reader.read(4096):
            handed += piece
    # Then the error came before EOF, and the flipped byte never reached the consumer
    assert len(handed) < size and bytes(handed) == data[: len(handed)]
    if size <= CHUNK:
        assert handed == b""  # one block: nothing at all before the check


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, CHUNK - 1, CHUNK, CHUNK + 1, BIG])
def test_healthy_blobs_stream_exactly_in_any_piece_size(object_store: ObjectStore, size: int) -> None:
    blobs = BlobStore(object_store)
    data = payload(size, seed=size)
    digest, _ = blobs.put_bytes(data)
    for piece in (1000, 4096, CHUNK, 3 * CHUNK):
        got = bytearray()
        with blobs.open(digest) as reader:
            while chunk := reader.read(piece):
                got += chunk
        assert bytes(got) == data
    assert blobs.verify(digest) == size


def test_a_reader_dropped_half_way_leaves_no_hashing_thread(object_store: ObjectStore) -> None:
    blobs = BlobStore(object_store)
    digest, _ = blobs.put_bytes(payload(4 * CHUNK, seed=5))
    before = threading.active_count()
    for _ in range(5):
        with blobs.open(digest) as reader:
            reader.read(2 * CHUNK + 10)
    assert threading.active_count() <= before


def test_a_missing_blob_is_object_not_found_at_the_blob_layer(object_store: ObjectStore, tmp_path: Path) -> None:
    blobs = BlobStore(object_store)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ObjectNotFound):
        blobs.open("0" * 64).read()
    with pytest.raises(ObjectNotFound):
        blobs.verify("0" * 64)
    with pytest.raises(ObjectNotFound):
        blobs.get_file("0" * 64, out / "x")
    assert leftovers(out) == []


# ---- the file layer: repo, commit, path and blob in one line -------------------------------


def _blob_of(pfs: Pfs, path: str, index: int = 0) -> tuple[str, str]:
    commit = pfs.inspect_commit("data", "master")
    return commit.id, pfs.read_manifest(commit).files[path].chunks[index]


@pytest.mark.parametrize("size", [5, BIG])
def test_file_reads_name_repo_commit_path_and_blob(pfs: Pfs, object_store: ObjectStore, tmp_path: Path, size: int) -> None:
    # Given a committed file whose blob was damaged
    pfs.put_file("data", "master", "/dir/a.bin", payload(size))
    commit, digest = _blob_of(pfs, "/dir/a.bin")
    rewrite(object_store, blob_key(digest), flip_first)
    out = tmp_path / "out"
    # When it is read as a stream, to a stream, and to a path
    reads = {
        "open": lambda: pfs.open_file("data", "master", "/dir/a.bin").read(),
        "stream": lambda: pfs.get_file("data", "master", "/dir/a.bin", io.BytesIO()),
        "path": lambda: pfs.get_file("data", "master", "/dir/a.bin", out / "a.bin"),
    }
    for name, read in reads.items():
        with pytest.raises(DataCorrupted) as caught:
            read()
        # Then one line names all four
        message = caught.value.message
        for part in ("'data'", commit, "'/dir/a.bin'", digest):
            assert part in message, (name, message)
        assert "\n" not in message
    # And the path read left nothing behind
    assert leftovers(out) == []


def test_a_damaged_later_chunk_of_an_appended_file_leaves_no_file(pfs: Pfs, object_store: ObjectStore, tmp_path: Path) -> None:
    # Given a file of two chunks (put then append) whose second chunk is damaged
    pfs.put_file("data", "master", "/log", payload(BIG, seed=1))
    pfs.put_file("data", "master", "/log", b"tail", append=True)
    commit, digest = _blob_of(pfs, "/log", index=1)
    rewrite(object_store, blob_key(digest), extend)
    # When it is fetched to a path; Then DataCorrupted names the second chunk, no file is left
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataCorrupted, match=digest):
        pfs.get_file("data", "master", "/log", out / "log")
    assert leftovers(out) == []


def test_a_missing_blob_is_damage_at_the_file_layer(pfs: Pfs, object_store: ObjectStore, tmp_path: Path) -> None:
    pfs.put_file("data", "master", "/a", b"hello")
    commit, digest = _blob_of(pfs, "/a")
    object_store.delete(blob_key(digest))
    with pytest.raises(DataCorrupted, match=f"'/a'.*{commit}.*{digest}.*missing"):
        pfs.get_file("data", "master", "/a", tmp_path / "a")
    with pytest.raises(DataCorrupted, match="missing"):
        pfs.open_file("data", "master", "/a").read()
    assert not (tmp_path / "a").exists() and not list(tmp_path.glob(".a.*"))


def test_recursive_get_writes_good_files_and_never_the_damaged_one(pfs: Pfs, object_store: ObjectStore, tmp_path: Path) -> None:
    pfs.put_files("data", "master", [("/d/a", b"good a"), ("/d/b", b"bad b"), ("/d/c", b"good c")])
    _, digest = _blob_of(pfs, "/d/b")
    rewrite(object_store, blob_key(digest), flip_first)
    out = tmp_path / "out"
    with pytest.raises(DataCorrupted, match="'/d/b'"):
        pfs.get_file("data", "master", "/d", out, recursive=True)
    # Files are written in path order: what is there checked out, the damaged one is absent
    assert leftovers(out) == ["a"] and (out / "a").read_bytes() == b"good a"


# ---- corrupt records: one line naming the object, never a traceback ------------------------


def named(kind: str, key: str) -> str:
    """The record kind and its object key, in one line."""
    return f"{kind} record '{re.escape(key)}' is corrupt: .*; run 'herd fsck'$"


GARBAGE = [b"", b"{not json", b"\xff\xfe\x00garbage", b"[]", b'{"unexpected": 1}', b"null"]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_corrupt_commit_branch_and_repo_records(pfs: Pfs, object_store: ObjectStore, garbage: bytes) -> None:
    pfs.put_file("data", "master", "/a", b"1")
    pfs.put_file("data", "master", "/b", b"2")
    head = pfs.inspect_commit("data", "master")
    # A commit record in the middle of the history
    object_store.put(commit_key("data", head.parent), garbage)  # type: ignore[arg-type]
    with pytest.raises(DataCorrupted, match=named("commit", f"repos/data/commits/{head.parent}")):
        pfs.list_commits("data", "master")
    # The branch record
    object_store.put(branch_key("data", "master"), garbage)
    with pytest.raises(DataCorrupted, match=named("branch", "repos/data/branches/master")):
        pfs.get_file("data", "master", "/a", io.BytesIO())
    # The repo record
    object_store.put(repo_key("data"), garbage)
    with pytest.raises(DataCorrupted, match=named("repo", "repos/data/repo.json")):
        pfs.inspect_repo("data")


def test_corrupt_open_commit_record(pfs: Pfs, object_store: ObjectStore) -> None:
    opened = pfs.start_commit("data", "master")
    object_store.put(open_key("data", opened.id), b'{"commit": 42}')
    with pytest.raises(DataCorrupted, match=named("open commit", f"repos/data/open/{opened.id}")):
        pfs.put_file("data", opened.id, "/x", b"1")


def test_corrupt_manifest_that_does_not_parse(pfs: Pfs, object_store: ObjectStore) -> None:
    pfs.put_file("data", "master", "/a", b"1")
    commit = pfs.inspect_commit("data", "master")
    object_store.put(manifest_key(commit.manifest), b"{\"files\": {\"/a\": 7}}")  # type: ignore[arg-type]
    fresh = Pfs(object_store)  # no manifest cache
    with pytest.raises(DataCorrupted, match=named("manifest", f"manifests/{commit.manifest}")):
        fresh.get_file("data", "master", "/a", io.BytesIO())


def test_a_manifest_is_checked_against_its_content_address() -> None:
    manifest = Manifest(files={"/a": FileEntry(chunks=("a" * 64,), size=1)})
    data = manifest.canonical_bytes()
    assert Manifest.from_bytes(data, expected_id=manifest.id) == manifest
    # Valid JSON, valid record, wrong bytes: only the hash can tell
    forged = data.replace(b'"size":1', b'"size":2')
    assert Manifest.from_bytes(forged) != manifest
    with pytest.raises(DataCorrupted, match=f"manifest record 'manifests/{manifest.id}' is corrupt: its"):
        Manifest.from_bytes(forged, expected_id=manifest.id)


def test_a_forged_manifest_is_refused_on_the_read_path(pfs: Pfs, object_store: ObjectStore) -> None:
    # Given a manifest rewritten as valid JSON with different content (a file dropped)
    pfs.put_files("data", "master", [("/a", b"1"), ("/b", b"2")])
    commit = pfs.inspect_commit("data", "master")
    key = manifest_key(commit.manifest)  # type: ignore[arg-type]
    forged = Manifest.from_bytes(object_store.get(key)).model_copy(update={"files": {}})
    object_store.put(key, forged.canonical_bytes())
    # When a fresh reader lists the commit; Then the content address gives it away
    with pytest.raises(DataCorrupted, match=f"manifest record '{key}' is corrupt: its"):
        Pfs(object_store).list_file("data", "master")


@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_any_stored_bytes_parse_or_raise_data_corrupted(data: bytes) -> None:
    for model in (Commit, Branch, Repo, Manifest, OpenCommit):
        try:
            model.from_bytes(data, key="k")
        except DataCorrupted as exc:
            assert exc.message.isprintable() and "'k'" in exc.message


# ---- get-file -r into a folder: nothing lands outside it, no link is followed ---------------


def _commit_crafted(pfs: Pfs, files: dict[str, bytes]) -> None:
    """A commit whose manifest holds paths the porcelain would refuse (as a hostile store can)."""
    entries = {path: FileEntry(chunks=(pfs.files.blobs.put_bytes(body)[0],), size=len(body))
               for path, body in files.items()}
    pfs.commits.commit_on_branch("data", "master", lambda _base: Manifest(files=entries))


@pytest.mark.parametrize("evil", ["/d/../../x", "/d/../x", "/d/./x", "/d//x", "/d/x/.."])
def test_recursive_get_refuses_manifest_paths_outside_the_folder(pfs: Pfs, tmp_path: Path, evil: str) -> None:
    # Given a manifest holding a path that escapes (or is not normalised)
    _commit_crafted(pfs, {"/d/a": b"ok", evil: b"pwned"})
    dest = tmp_path / "dest"
    out = dest / "deep" / "out"
    # When fetched recursively; Then refused naming the path, and NOTHING is written anywhere
    for source in ("/d", "/"):
        with pytest.raises(InvalidPath, match="outside"):
            pfs.get_file("data", "master", source, out, recursive=True)
    written = [p for p in dest.rglob("*") if p.is_file()]
    assert written == []


def test_recursive_get_never_writes_through_a_planted_folder_symlink(pfs: Pfs, tmp_path: Path) -> None:
    pfs.put_files("data", "master", [("/d/sub/x", b"x"), ("/d/y", b"y")])
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(outside)
    with pytest.raises(InvalidPath, match=f"'{out / 'sub'}' is a symlink"):
        pfs.get_file("data", "master", "/d", out, recursive=True)
    assert leftovers(outside) == []


@pytest.mark.parametrize("dangling", [False, True])
def test_recursive_get_refuses_a_planted_symlink_at_the_target_name(pfs: Pfs, tmp_path: Path, dangling: bool) -> None:
    pfs.put_files("data", "master", [("/d/y", b"new")])
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    if not dangling:
        victim.write_bytes(b"keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / "y").symlink_to(victim)
    with pytest.raises(InvalidPath, match=f"'{out / 'y'}' is a symlink"):
        pfs.get_file("data", "master", "/d", out, recursive=True)
    assert (out / "y").is_symlink() and leftovers(out) == ["y"]
    assert leftovers(outside) == ([] if dangling else ["victim"])
    if not dangling:
        assert victim.read_bytes() == b"keep"


def test_recursive_get_into_a_folder_that_is_itself_a_link_is_the_callers_choice(pfs: Pfs, tmp_path: Path) -> None:
    pfs.put_files("data", "master", [("/d/a/b", b"1"), ("/d/c", b"22")])
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    pfs.get_file("data", "master", "/d", link, recursive=True)
    assert (real / "a" / "b").read_bytes() == b"1" and (real / "c").read_bytes() == b"22"
    assert os.stat(real / "c").st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_errors_are_herd_errors(pfs: Pfs) -> None:
    assert issubclass(DataCorrupted, HerdError) and DataCorrupted.exit_code == 8
