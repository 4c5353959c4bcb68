"""BlobStore over every object store: content addressing, dedupe, streaming, boundaries."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from storage import blobs
from storage.blobs import CHUNK, BlobStore
from storage.errors import InvalidArgument, ObjectNotFound
from storage.layout import blob_key
from storage.objects import ObjectStore
from tests.fakes import ShortReads
from tests.storage.counting_store import CountingStore

# A small "in-memory" threshold so the large-blob paths run on small data, fast.
SMALL = 64 * 1024


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blobs, "SMALL", SMALL)


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def test_blob_key_layout_and_hash(object_store: ObjectStore) -> None:
    # Given bytes put as a blob; Then the id is their sha256 and the key is blobs/<h[:2]>/<h>
    data = b"hello herd"
    digest, size = BlobStore(object_store).put_bytes(data)
    assert digest == hashlib.sha256(data).hexdigest() and size == len(data)
    assert list(object_store.list("")) == [f"blobs/{digest[:2]}/{digest}"]
    with BlobStore(object_store).open(digest) as reader:
        assert reader.read() == data


@pytest.mark.parametrize("size", [10, SMALL + 1, 2 * CHUNK + 5])
def test_same_bytes_are_stored_once_whatever_the_way_in(object_store: ObjectStore, tmp_path: Path, size: int) -> None:
    # Given the same bytes arriving as bytes, as a file and as a pipe, twice each
    store = BlobStore(object_store)
    data = payload(size)
    source = tmp_path / "src.bin"
    source.write_bytes(data)
    ids = set()
    for _ in range(2):
        ids.add(store.put_bytes(data))
        ids.add(store.put_file(source))
        ids.add(store.put_stream(ShortReads(data)))  # type: ignore[arg-type]
    # Then one (hash, size), one object, and no temp key left behind
    assert ids == {(hashlib.sha256(data).hexdigest(), size)}
    assert list(object_store.list("")) == [blob_key(hashlib.sha256(data).hexdigest())]


@pytest.mark.parametrize("size", [100, SMALL + 1, CHUNK + 1])
def test_an_existing_blob_is_never_uploaded_again(object_store: ObjectStore, tmp_path: Path, size: int) -> None:
    # Given a blob already stored
    source = tmp_path / "src.bin"
    source.write_bytes(payload(size, seed=3))
    counting = CountingStore(object_store)
    store = BlobStore(counting)
    digest, _ = store.put_file(source)
    first_write = counting.bytes_in
    existing = object_store.local_path(blob_key(digest))
    inode = existing.stat().st_ino if existing else None
    # When the same content is put again, as a file and as a stream
    store.put_file(source)
    store.put_stream(ShortReads(source.read_bytes()))  # type: ignore[arg-type]
    # Then a remote store received no more bytes, and a local blob file was never replaced
    if getattr(object_store, "rename", None) is None or size <= SMALL:
        assert counting.bytes_in == first_write
    if existing is not None:
        assert object_store.local_path(blob_key(digest)).stat().st_ino == inode  # type: ignore[union-attr]


def test_streaming_round_trip(object_store: ObjectStore, tmp_path: Path) -> None:
    # Given a blob larger than a few chunks, streamed in from a pipe
    data = payload(3 * CHUNK + 123, seed=7)
    store = BlobStore(object_store)
    digest, size = store.put_stream(ShortReads(data))  # type: ignore[arg-type]
    # When read back as a file and as a stream; Then the bytes are the same
    store.get_file(digest, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    with store.open(digest) as reader:
        assert reader.read() == data
    assert size == len(data) and store.exists(digest)


def test_local_path_only_on_the_local_store(object_store: ObjectStore) -> None:
    digest, _ = BlobStore(object_store).put_bytes(b"x" * 10)
    path = BlobStore(object_store).local_path(digest)
    if type(object_store).__name__ == "LocalObjectStore":
        assert path is not None and path.read_bytes() == b"x" * 10
    else:
        assert path is None


def test_missing_and_malformed_ids(object_store: ObjectStore, tmp_path: Path) -> None:
    store = BlobStore(object_store)
    missing = "0" * 64
    assert not store.exists(missing)
    with pytest.raises(ObjectNotFound, match=missing):
        store.get_file(missing, tmp_path / "x")
    for bad in ("abc", "G" * 64, "A" * 64, "../" + "0" * 61):
        with pytest.raises(InvalidArgument, match="invalid blob id"):
            store.exists(bad)


BOUNDARIES = [0, 1, SMALL - 1, SMALL, SMALL + 1, CHUNK - 1, CHUNK, CHUNK + 1, SMALL + CHUNK]


# Each example writes to a real store (S3 included): a few boundary cases, whatever the profile.
@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(BOUNDARIES), delta=st.integers(-3, 3), seed=st.integers(0, 2**16), step=st.integers(1, 9))
@example(base=SMALL, delta=0, seed=1, step=1)
@example(base=CHUNK, delta=1, seed=2, step=9)
def test_hash_is_right_at_chunk_boundaries(
    object_store: ObjectStore, tmp_path: Path, base: int, delta: int, seed: int, step: int
) -> None:
    # Given a payload whose size sits on or beside a threshold, and a pipe with odd read sizes
    data = payload(max(0, base + delta), seed)
    expected = (hashlib.sha256(data).hexdigest(), len(data))
    store = BlobStore(object_store)
    source = tmp_path / f"b{seed}"
    source.write_bytes(data)
    # When it goes in every way; Then the id is the sha256 and the bytes come back
    assert store.put_stream(ShortReads(data, step=7_919 * step)) == expected  # type: ignore[arg-type]
    assert store.put_file(source) == expected
    with store.open(expected[0]) as reader:
        assert reader.read() == data


@pytest.mark.parametrize("size", [10, 3 * CHUNK + 1])
def test_reads_are_verified_in_one_pass_over_the_stored_bytes(object_store: ObjectStore, tmp_path: Path, size: int) -> None:
    # Given a stored blob read through a store that counts the bytes it serves
    data = payload(size, seed=11)
    digest, _ = BlobStore(object_store).put_bytes(data)
    counting = CountingStore(object_store)
    store = BlobStore(counting)
    # When it is read by every path; Then each read the stored bytes once: hashed while moving
    store.get_file(digest, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data and counting.bytes_out == size
    with store.open(digest) as reader:
        assert reader.read() == data
    assert store.verify(digest) == size
    sink = io.BytesIO()
    assert store.write_to(digest, sink) == size and sink.getvalue() == data
    assert counting.bytes_out == 4 * size


def test_a_damaged_blob_is_refused_with_its_id(object_store: ObjectStore, tmp_path: Path) -> None:
    from storage.errors import DataCorrupted

    digest, _ = BlobStore(object_store).put_bytes(b"hello herd")
    object_store.put(blob_key(digest), b"hello HERD")
    with pytest.raises(DataCorrupted, match=f"blob '{digest}' in .* is corrupt: its 10 bytes hash to"):
        BlobStore(object_store).get_file(digest, tmp_path / "out")
    assert list(tmp_path.iterdir()) == [] or [p.name for p in tmp_path.iterdir()] == ["store"]


def _blobs_hash_to_their_keys(object_store: ObjectStore) -> None:
    for key in object_store.list("blobs/"):
        BlobStore(object_store).verify(key.rsplit("/", 1)[1])  # DataCorrupted when they do not


@pytest.mark.parametrize("change", ["rewritten", "appended", "truncated"])
def test_a_file_changed_after_its_hash_is_refused_before_it_is_stored(
    object_store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    # Given a file that another writer changes right after herd hashed it (the worst moment),
    # on a store that must know the key before it uploads (one that renames reads it once)
    if getattr(object_store, "rename", None) is not None:
        pytest.skip("a store that renames hashes the very bytes it writes: no second read")
    source = tmp_path / "growing.log"
    source.write_bytes(payload(3 * CHUNK + 5, seed=21))
    real = hashlib.file_digest

    def hashed_then_changed(handle: object, digest: str) -> object:
        result = real(handle, digest)  # type: ignore[arg-type]
        data = source.read_bytes()
        changed = {"rewritten": data[:-1] + b"!", "appended": data + b"more", "truncated": data[:CHUNK]}[change]
        source.write_bytes(changed)
        return result

    monkeypatch.setattr(hashlib, "file_digest", hashed_then_changed)
    # When it is put; Then a one-line error names the file, and no object (no blob, no part,
    # no pending multipart upload) was stored under either content's hash
    with pytest.raises(InvalidArgument, match=f"source file '{source}' changed while it was stored"):
        BlobStore(object_store).put_file(source)
    assert list(object_store.list("")) == []
    client = getattr(object_store, "_client", None)
    if client is not None:
        pending = client.list_multipart_uploads(Bucket=object_store.bucket)  # type: ignore[attr-defined]
        assert pending.get("Uploads", []) == []
    # And once the file is still, it goes in
    monkeypatch.setattr(hashlib, "file_digest", real)
    digest, size = BlobStore(object_store).put_file(source)
    assert (digest, size) == (hashlib.sha256(source.read_bytes()).hexdigest(), source.stat().st_size)
    _blobs_hash_to_their_keys(object_store)


def test_a_file_rewritten_while_it_is_put_never_makes_a_blob_that_fails_its_hash(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    # Given a file another thread keeps rewriting in place, with two contents of one size
    import threading

    source = tmp_path / "busy.bin"
    contents = [payload(2 * CHUNK + 7, seed=s) for s in (31, 32)]
    source.write_bytes(contents[0])
    stop = threading.Event()

    def writer() -> None:
        turn = 0
        while not stop.is_set():
            with open(source, "r+b") as out:  # in place: same inode, same size
                for start in range(0, len(contents[0]), CHUNK // 4):
                    out.seek(start)
                    out.write(contents[turn % 2][start : start + CHUNK // 4])
            turn += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    store = BlobStore(object_store)
    try:
        # When it is put again and again; Then each put either stores blob whose bytes hash to
        # its id and have the size returned, or is refused as changed: never anything else
        for _ in range(8):
            try:
                digest, size = store.put_file(source)
            except InvalidArgument as exc:
                assert "changed while it was stored" in exc.message
                continue
            with store.open(digest) as reader:
                assert len(reader.read()) == size
    finally:
        stop.set()
        thread.join()
    _blobs_hash_to_their_keys(object_store)


@pytest.mark.s3
def test_a_stream_of_short_reads_goes_to_s3_in_full_parts(s3_store: Any) -> None:
    # Given a raw stream handing out 1 MiB a read (a verified blob reader, a pipe) of 20 MiB
    store = s3_store("herd")
    data = payload(20 * 1024 * 1024, seed=41)
    # When it is uploaded; Then each part but the last is full (S3 refuses parts under 5 MiB)
    store.put_stream("k", ShortReads(data, step=CHUNK))
    assert store.get("k") == data
    head = store._client.head_object(Bucket=store.bucket, Key=store._key("k"), PartNumber=1)
    assert head["PartsCount"] == 3 and head["ContentLength"] == 8 * 1024 * 1024
