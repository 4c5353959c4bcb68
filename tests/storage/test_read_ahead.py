"""Reading a big object by parts fetched ahead (storage/read_ahead.py): the generator alone with
a fake fetch, then S3ObjectStore.open on moto's S3 server over HTTP with parts of 64 KiB, so a
few hundred KiB span many ranged GETs."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

import storage.s3
from storage.blobs import BlobStore
from storage.errors import DataCorrupted, ObjectNotFound, StorageUnavailable
from storage.layout import blob_key
from storage.read_ahead import read_ahead

PART = 64 * 1024


def fake_object(size: int) -> bytes:
    return bytes((index * 7 + index // 251) % 256 for index in range(size))


def parts_of(data: bytes, part: int, ahead: int, fetch: Callable[[int, int], bytes] | None = None) -> Iterator[bytes]:
    first = io.BytesIO(data[:part])
    return read_ahead(first, min(part, len(data)), len(data), fetch or (lambda o, n: data[o:o + n]),
                      part=part, ahead=ahead, where="object 'k'")


@pytest.mark.parametrize("size", [1, PART - 1, PART, PART + 1, 5 * PART + 123])
@pytest.mark.parametrize("ahead", [1, 3])
def test_parts_come_out_whole_and_in_order(size: int, ahead: int) -> None:
    data = fake_object(size)
    assert b"".join(parts_of(data, PART, ahead)) == data


def test_no_more_than_ahead_parts_are_fetched_before_they_are_read() -> None:
    data = fake_object(10 * PART)
    asked: list[int] = []

    def fetch(offset: int, length: int) -> bytes:
        asked.append(offset)
        return data[offset:offset + length]

    parts = parts_of(data, PART, 2, fetch)
    next(parts)  # the first block of the first part
    time.sleep(0.05)
    assert sorted(asked) == [PART, 2 * PART]
    parts.close()


def test_a_part_of_the_wrong_length_is_refused_naming_the_object_and_range() -> None:
    data = fake_object(3 * PART)
    with pytest.raises(StorageUnavailable, match=rf"object 'k': bytes {2 * PART}-{3 * PART - 1} came back as 10 bytes"):
        b"".join(parts_of(data, PART, 2, lambda o, n: data[o:o + (10 if o == 2 * PART else n)]))


def test_a_short_first_part_is_refused() -> None:
    data = fake_object(3 * PART)
    parts = read_ahead(io.BytesIO(data[:100]), PART, len(data), lambda o, n: data[o:o + n],
                       part=PART, ahead=2, where="object 'k'")
    with pytest.raises(StorageUnavailable, match=f"its first {PART} bytes came back as 100"):
        b"".join(parts)


def test_a_failed_fetch_reaches_the_reader_unchanged() -> None:
    data = fake_object(3 * PART)

    def fetch(offset: int, length: int) -> bytes:
        raise ObjectNotFound("k", "s3://b")

    with pytest.raises(ObjectNotFound):
        b"".join(parts_of(data, PART, 2, fetch))


# -- S3ObjectStore.open on moto ----------------------------------------------------------------

@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads in parts of 64 KiB, 3 in flight (uploads keep their 8 MiB threshold: one PUT)."""
    monkeypatch.setattr(storage.s3, "TRANSFER", TransferConfig(
        multipart_threshold=8 << 20, multipart_chunksize=PART, max_concurrency=3))


def read_in_odd_sizes(stream: Any) -> bytes:
    pieces = []
    for size in (1, 1000, 70_000, 3, PART * 2):
        pieces.append(stream.read(size))
    pieces.append(stream.read())
    return b"".join(pieces)


@pytest.mark.s3
@pytest.mark.parametrize("size", [0, 1, PART, PART + 1, 7 * PART + 123])
def test_s3_open_reads_any_size_whole(small_parts: None, s3_store: Callable[..., Any], size: int) -> None:
    store = s3_store("herd")
    data = os.urandom(size)
    store.put("objects/x", data)
    with store.open("objects/x") as stream:
        assert read_in_odd_sizes(stream) == data


@pytest.mark.s3
def test_s3_open_of_a_missing_key_names_it(small_parts: None, s3_store: Callable[..., Any]) -> None:
    with pytest.raises(ObjectNotFound, match="objects/none"):
        s3_store("herd").open("objects/none")


@pytest.mark.s3
def test_an_object_replaced_while_read_is_refused_not_mixed(small_parts: None, s3_store: Callable[..., Any]) -> None:
    store = s3_store("herd")
    old, new = b"o" * (40 * PART), b"n" * (40 * PART)
    store.put("objects/x", old)
    with store.open("objects/x") as stream:
        # The reader's 1 MiB buffer holds 16 parts, 3 more are asked for; the other 21 are not yet.
        stream.read(10)
        store.put("objects/x", new)
        with pytest.raises(StorageUnavailable, match="object 'objects/x' at .* changed while it was read; read it again"):
            stream.read()


@pytest.mark.s3
def test_a_big_blob_is_verified_across_its_parts(small_parts: None, s3_store: Callable[..., Any], tmp_path: Path) -> None:
    store = s3_store("herd")
    blobs = BlobStore(store)
    data = os.urandom(6 * PART + 5)
    digest, _ = blobs.put_bytes(data)
    blobs.get_file(digest, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data

    # The same length, one byte changed in the fifth part: the hash over every part refuses it.
    tampered = bytearray(data)
    tampered[4 * PART + 1] ^= 0xFF
    store.put(blob_key(digest), bytes(tampered))
    with pytest.raises(DataCorrupted, match=digest):
        blobs.get_file(digest, tmp_path / "bad")
    assert not any(path.name != "out" for path in tmp_path.iterdir())


@pytest.mark.s3
def test_closing_early_leaves_no_fetch_behind(small_parts: None, s3_store: Callable[..., Any]) -> None:
    store = s3_store("herd")
    store.put("objects/x", os.urandom(20 * PART))
    with store.open("objects/x") as stream:
        assert len(stream.read(100)) == 100
    deadline = time.monotonic() + 10
    while any(thread.name.startswith("herd-read-ahead") for thread in threading.enumerate()):
        assert time.monotonic() < deadline, "read-ahead threads still run 10 s after the close"
        time.sleep(0.02)
