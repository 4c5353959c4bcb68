"""Packs of small files (storage format 2): written, read back verified, and refused when
tampered with, on memory, a local folder and moto's S3 server over HTTP."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from storage.blobs import PACKED_CHUNK_MAX, BlobStore
from storage.errors import DataCorrupted, FormatTooNew
from storage.factory import raise_format
from storage.layout import BLOB_PREFIX, FORMAT_KEY, PACK_PREFIX, STORAGE_FORMAT, pack_key
from storage.model import FileEntry, Manifest, concatenated
from storage.objects import MemoryObjectStore, ObjectStore
from storage.packs import PACK_MIN_CHUNKS, PackWriter
from storage.repos import Pfs
from tests.storage.packing import pack_chunks
from tests.storage.test_repos import read

HEX = "a" * 64


def small_files(folder: Path, count: int, size: int = 100) -> list[tuple[str, Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for index in range(count):
        path = folder / f"f{index:03}.txt"
        path.write_bytes(f"{index:04}".encode() * (size // 4))
        items.append((f"/d/f{index:03}.txt", path))
    return items


@pytest.fixture
def pfs(object_store: ObjectStore) -> Pfs:
    pfs = Pfs(object_store)
    pfs.create_repo("data")
    return pfs


# ---- the model: pure ------------------------------------------------------------------------


def test_a_loose_entry_serialises_as_format_1_did() -> None:
    # Manifest ids of existing stores must not change: no `packed` key when nothing is packed
    entry = FileEntry(chunks=(HEX,), size=3)
    assert entry.canonical_bytes() == b'{"chunks":["' + HEX.encode() + b'"],"size":3}'
    packed = FileEntry(chunks=(HEX,), size=3, packed=(("b" * 64, 10, 3),))
    assert json.loads(packed.canonical_bytes())["packed"] == [["b" * 64, 10, 3]]
    assert FileEntry.from_bytes(packed.canonical_bytes()) == packed


def test_appending_keeps_where_each_chunk_lies() -> None:
    loose = FileEntry(chunks=(HEX,), size=3)
    packed = FileEntry(chunks=("c" * 64,), size=2, packed=(("b" * 64, 0, 2),))
    both = loose.appended(packed)
    assert both.slices() == [(HEX, None), ("c" * 64, ("b" * 64, 0, 2))]
    assert both.size == 5
    assert concatenated([loose, loose]).packed == ()  # all loose: nothing written


@pytest.mark.parametrize("packed", [
    [["x", 0, 1]],  # no pack id
    [[HEX, -1, 1]],  # negative offset
    [[HEX, 0, -1]],  # negative length
    [[HEX, 0]],  # no length
])
def test_a_crafted_slice_does_not_parse(packed: list[object]) -> None:
    data = json.dumps({"chunks": [HEX], "size": 1, "packed": packed}).encode()
    with pytest.raises(DataCorrupted, match="packed"):
        FileEntry.from_bytes(data, key="manifests/x")


def test_slices_of_a_mismatched_entry_are_corruption() -> None:
    entry = FileEntry(chunks=(HEX, HEX), size=2, packed=((HEX, 0, 1),))
    with pytest.raises(DataCorrupted, match="places 1 chunks in packs but has 2"):
        entry.slices()


# ---- the writer and verified reads, on every store -----------------------------------------


def test_pack_chunks_round_trip_and_dedup_within_a_pack(object_store: ObjectStore) -> None:
    chunks = [b"alpha", b"beta", b"alpha", b"", b"x" * 1000]
    entries = pack_chunks(object_store, chunks)
    assert [e.size for e in entries] == [5, 4, 5, 0, 1000]
    packs = {e.packed[0][0] for e in entries}
    assert len(packs) == 1
    assert entries[0].packed == entries[2].packed  # the same bytes are stored once
    blobs = BlobStore(object_store)
    for data, entry in zip(chunks, entries):
        ((digest, where),) = entry.slices()
        assert digest == hashlib.sha256(data).hexdigest()
        assert blobs.read_slice(digest, where) == data  # type: ignore[arg-type]
    pack = next(iter(packs))
    assert hashlib.sha256(object_store.get(pack_key(pack))).hexdigest() == pack
    assert not list(object_store.list(BLOB_PREFIX))


def test_a_big_chunk_stays_a_loose_blob_and_packs_close_at_their_target(object_store: ObjectStore) -> None:
    writer = PackWriter(object_store, target=10)
    for data in (b"123456", b"7890ab", b"c" * (PACKED_CHUNK_MAX + 1), b"de"):
        writer.add(data)
    entries = writer.close()
    assert entries[2].packed == () and BlobStore(object_store).exists(entries[2].chunks[0])
    assert len(writer.packs) == 2  # the first closed at 12 bytes >= 10, the second holds b"de"
    assert entries[0].packed[0][0] == entries[1].packed[0][0] != entries[3].packed[0][0]


def test_get_range_past_the_end_is_short(object_store: ObjectStore) -> None:
    object_store.put("k", b"0123456789")
    assert object_store.get_range("k", 2, 3) == b"234"
    assert object_store.get_range("k", 8, 10) == b"89"
    assert object_store.get_range("k", 20, 5) == b""
    assert object_store.get_range("k", 0, 0) == b""


@pytest.mark.parametrize("tamper", ["flip", "shorten", "move", "grow"])
def test_a_tampered_slice_is_refused_before_a_byte_is_returned(object_store: ObjectStore, tamper: str) -> None:
    entries = pack_chunks(object_store, [b"first file", b"second file"])
    ((digest, where),) = entries[1].slices()
    assert where is not None
    pack, offset, length = where
    blobs = BlobStore(object_store)
    data = bytearray(object_store.get(pack_key(pack)))
    if tamper == "flip":
        data[offset] ^= 1
        object_store.put(pack_key(pack), bytes(data))
    elif tamper == "shorten":
        object_store.put(pack_key(pack), bytes(data[: offset + 3]))
    elif tamper == "move":
        where = (pack, 0, length)  # a manifest pointing at another file's bytes
    else:
        where = (pack, offset, PACKED_CHUNK_MAX + 1)  # claims more than a pack chunk holds
    with pytest.raises(DataCorrupted) as caught:
        blobs.read_slice(digest, where)
    assert digest in caught.value.message and pack in caught.value.message


# ---- the porcelain: put-file -r, get, append, copy ------------------------------------------


def test_many_small_files_are_packed_and_read_back(pfs: Pfs, object_store: ObjectStore, tmp_path: Path) -> None:
    items = small_files(tmp_path / "src", PACK_MIN_CHUNKS + 4)
    items.append(("/big.bin", tmp_path / "big.bin"))
    (tmp_path / "big.bin").write_bytes(os.urandom(PACKED_CHUNK_MAX + 10))
    pfs.put_files("data", "master", items)
    manifest = pfs.read_manifest(pfs.inspect_commit("data", "master"))
    assert all(manifest.files[path].packed for path, _ in items[:-1])
    assert manifest.files["/big.bin"].packed == ()  # over 1 MiB: a loose blob
    assert len(list(object_store.list(PACK_PREFIX))) == 1
    for path, source in items:
        assert read(pfs, "master", path) == source.read_bytes()
    out = tmp_path / "out"
    pfs.get_file("data", "master", "/d", out, recursive=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(p).name for p, _ in items[:-1])
    # The first pack raised the store's format (a fresh store is marked with this herd's)
    assert object_store.get(FORMAT_KEY) == f"{STORAGE_FORMAT}\n".encode()


def test_streams_are_packed_when_small_and_replayed_whole_when_not(pfs: Pfs, tmp_path: Path) -> None:
    # put-file -r with a progress bar hands streams, not paths: the small ones are packed too
    import io

    big = os.urandom(PACKED_CHUNK_MAX + 5)
    items: list[tuple[str, object]] = [(f"/s/{i:02}", io.BytesIO(b"line %d\n" % i)) for i in range(PACK_MIN_CHUNKS)]
    items.insert(3, ("/s/big", io.BytesIO(big)))
    pfs.put_files("data", "master", items)  # type: ignore[arg-type]
    files = pfs.read_manifest(pfs.inspect_commit("data", "master")).files
    assert files["/s/big"].packed == () and read(pfs, "master", "/s/big") == big
    assert files["/s/05"].packed and read(pfs, "master", "/s/05") == b"line 5\n"


def test_a_few_small_files_stay_loose(pfs: Pfs, object_store: ObjectStore, tmp_path: Path) -> None:
    pfs.put_files("data", "master", small_files(tmp_path / "src", PACK_MIN_CHUNKS - 1))
    assert not list(object_store.list(PACK_PREFIX))


def test_append_and_copy_keep_packed_chunks_readable(pfs: Pfs, tmp_path: Path) -> None:
    items = small_files(tmp_path / "src", PACK_MIN_CHUNKS)
    pfs.put_files("data", "master", items)
    pfs.put_file("data", "master", "/d/f000.txt", b"+tail", append=True)
    pfs.create_repo("other")
    pfs.copy_file("data", "master", "/d", "other", "master", "/copy")
    first = items[0][1].read_bytes()
    assert read(pfs, "master", "/d/f000.txt") == first + b"+tail"
    assert read(pfs, "master", "/copy/f000.txt", repo="other") == first + b"+tail"
    entry = pfs.read_manifest(pfs.inspect_commit("data", "master")).files["/d/f000.txt"]
    assert entry.packed[0] is not None and entry.packed[1] is None


def test_a_damaged_pack_names_the_file_and_leaves_no_file(pfs: Pfs, object_store: ObjectStore, tmp_path: Path) -> None:
    items = small_files(tmp_path / "src", PACK_MIN_CHUNKS)
    pfs.put_files("data", "master", items)
    entry = pfs.read_manifest(pfs.inspect_commit("data", "master")).files["/d/f003.txt"]
    pack, offset, _ = entry.packed[0]  # type: ignore[misc]
    data = bytearray(object_store.get(pack_key(pack)))
    data[offset] ^= 0xFF
    object_store.put(pack_key(pack), bytes(data))
    with pytest.raises(DataCorrupted) as caught:
        pfs.get_file("data", "master", "/d/f003.txt", tmp_path / "got.txt")
    assert "'/d/f003.txt'" in caught.value.message and "herd fsck" in caught.value.message
    assert not (tmp_path / "got.txt").exists()
    assert read(pfs, "master", "/d/f004.txt") == items[4][1].read_bytes()  # its neighbours are fine


def test_a_crafted_manifest_slice_cannot_read_another_file(pfs: Pfs, object_store: ObjectStore, tmp_path: Path) -> None:
    # Given a manifest whose entry points at the start of the pack (another file's bytes)
    items = small_files(tmp_path / "src", PACK_MIN_CHUNKS)
    pfs.put_files("data", "master", items)
    manifest = pfs.read_manifest(pfs.inspect_commit("data", "master"))
    entry = manifest.files["/d/f009.txt"]
    pack, _, length = entry.packed[0]  # type: ignore[misc]
    forged = FileEntry(chunks=entry.chunks, size=entry.size, packed=((pack, 0, length),))
    crafted = Manifest(files={"/d/f009.txt": forged})
    blobs = BlobStore(object_store)
    with pytest.raises(DataCorrupted):
        blobs.read_slice(*forged.slices()[0])  # type: ignore[arg-type]
    assert crafted.files["/d/f009.txt"].hash == entry.hash  # ids alone would not have told


# ---- the format marker ---------------------------------------------------------------------


def test_the_first_pack_raises_a_format_1_store(object_store: ObjectStore) -> None:
    object_store.put(FORMAT_KEY, b"1\n")
    pack_chunks(object_store, [b"a", b"b"])
    assert object_store.get(FORMAT_KEY) == b"2\n"
    raise_format(object_store, 2)  # already there: unchanged
    assert object_store.get(FORMAT_KEY) == b"2\n"


def test_raising_never_lowers_a_newer_marker() -> None:
    store = MemoryObjectStore()
    store.put(FORMAT_KEY, f"{STORAGE_FORMAT + 1}\n".encode())
    with pytest.raises(FormatTooNew):
        raise_format(store, 2)
    assert store.get(FORMAT_KEY) == f"{STORAGE_FORMAT + 1}\n".encode()


def test_a_format_1_manifest_reads_unchanged(pfs: Pfs, object_store: ObjectStore) -> None:
    # What format 1 wrote (no `packed` anywhere) keeps its id and reads as before
    pfs.put_file("data", "master", "/a.txt", b"hello")
    commit = pfs.inspect_commit("data", "master")
    assert commit.manifest is not None
    raw = object_store.get(f"manifests/{commit.manifest}")
    assert b"packed" not in raw
    assert Manifest.from_bytes(raw, expected_id=commit.manifest).id == commit.manifest
