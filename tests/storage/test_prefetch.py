"""A batch's packed chunks read ahead: the ranges planned (pure), and real stores (memory,
local folder, S3 on moto) read through them with tampered and missing packs."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.blobs import PACKED_CHUNK_MAX, BlobStore
from storage.errors import DataCorrupted, ObjectNotFound
from storage.layout import pack_key
from storage.model import PackSlice
from storage.objects import ObjectStore
from storage.prefetch import PrefetchedChunks, Slice, packed_slices, plan_ranges
from tests.storage.counting_store import CountingStore
from tests.storage.packing import pack_chunks

PACKS = ["a" * 64, "b" * 64, "c" * 64]


def a_slice(pack: int, offset: int, length: int) -> Slice:
    return (f"{pack}{offset}:{length}".ljust(64, "0"), (PACKS[pack], offset, length))


slices = st.lists(st.builds(a_slice, st.integers(0, 2), st.integers(0, 1 << 22), st.integers(0, PACKED_CHUNK_MAX + 2)))


@settings(max_examples=300, deadline=None)
@given(slices, st.integers(0, 1 << 20), st.integers(1, 1 << 23), st.integers(0, 1 << 23))
def test_every_range_holds_its_slices_within_the_bounds(wanted: list[Slice], gap: int, span: int, budget: int) -> None:
    ranges = plan_ranges(wanted, gap=gap, span=span, budget=budget)
    taken = [item for read in ranges for item in read.slices]
    # Each slice once, none longer than a pack chunk, the budget kept, and the earliest taken first
    assert len(taken) == len(set(taken))
    assert all(item[1][2] <= PACKED_CHUNK_MAX for item in taken)
    assert sum(item[1][2] for item in taken) <= budget
    fitting = list(dict.fromkeys(item for item in wanted if item[1][2] <= PACKED_CHUNK_MAX))
    assert set(taken) == set(fitting[: len(taken)])
    for read in ranges:
        # Each slice lies inside its range, of its pack; a range of several slices is within span
        assert all(item[1][0] == read.pack for item in read.slices)
        assert all(read.offset <= item[1][1] and item[1][1] + item[1][2] <= read.offset + read.length
                   for item in read.slices)
        assert len(read.slices) == 1 or read.length <= span
        assert read.offset == min(item[1][1] for item in read.slices)
        assert read.offset + read.length == max(item[1][1] + item[1][2] for item in read.slices)


def test_neighbours_share_a_read_and_distant_slices_do_not() -> None:
    near = [a_slice(0, 0, 10), a_slice(0, 10, 5), a_slice(0, 100, 1)]
    far = [a_slice(0, 1 << 21, 3)]
    other = [a_slice(1, 0, 4)]
    ranges = plan_ranges(near + far + other, gap=1000)
    assert [(r.pack, r.offset, r.length, len(r.slices)) for r in ranges] == [
        (PACKS[0], 0, 101, 3), (PACKS[0], 1 << 21, 3, 1), (PACKS[1], 0, 4, 1),
    ]


def stage(source: PrefetchedChunks, digest: str, where: PackSlice) -> bytes:
    out = io.BytesIO()
    source.write_chunk_to(digest, where, out)
    return out.getvalue()


def test_a_pack_of_small_chunks_is_one_read(object_store: ObjectStore) -> None:
    bodies = [f"file {n}\n".encode() * (n % 5 + 1) for n in range(50)]
    entries = pack_chunks(object_store, bodies)
    counted = CountingStore(object_store)
    prefetched = PrefetchedChunks(BlobStore(counted), packed_slices(entries))
    assert prefetched.requests == 1 and len(prefetched) == 50
    read = counted.bytes_out
    for entry, body in zip(entries, bodies):
        ((digest, where),) = entry.slices()
        assert where is not None and stage(prefetched, digest, where) == body
    assert counted.bytes_out == read  # staged from memory


@pytest.mark.parametrize("tamper", ["flip", "shorten"])
def test_a_tampered_chunk_is_left_to_its_own_read_which_refuses_it(object_store: ObjectStore, tamper: str) -> None:
    entries = pack_chunks(object_store, [f"file {n}".encode() for n in range(20)])
    ((digest, where),) = entries[7].slices()
    assert where is not None
    pack, offset, _ = where
    data = bytearray(object_store.get(pack_key(pack)))
    if tamper == "flip":
        data[offset] ^= 1
    else:
        del data[offset + 2:]
    object_store.put(pack_key(pack), bytes(data))
    prefetched = PrefetchedChunks(BlobStore(object_store), packed_slices(entries))
    # Then every chunk before it is staged from memory, and the tampered one fails its own read
    assert len(prefetched) == (19 if tamper == "flip" else 7)
    assert stage(prefetched, *entries[6].slices()[0]) == b"file 6"  # type: ignore[arg-type]
    with pytest.raises(DataCorrupted, match=digest):
        stage(prefetched, digest, where)


def test_crafted_slices_never_read_past_what_their_own_read_allows(object_store: ObjectStore) -> None:
    entries = pack_chunks(object_store, [f"file {n}".encode() for n in range(20)])
    ((digest, where),) = entries[3].slices()
    assert where is not None
    pack = where[0]
    crafted = [(digest, (pack, 1 << 40, 6)), (digest, (pack, 0, PACKED_CHUNK_MAX + 1)), (digest, (pack, 0, 6))]
    prefetched = PrefetchedChunks(BlobStore(object_store), crafted)
    assert len(prefetched) == 0  # none of them is chunk 3's bytes
    for item in crafted:
        with pytest.raises(DataCorrupted, match=digest):
            stage(prefetched, *item)


def test_a_missing_pack_is_object_not_found_at_the_datums_own_read(object_store: ObjectStore) -> None:
    entries = pack_chunks(object_store, [f"file {n}".encode() for n in range(20)])
    ((digest, where),) = entries[0].slices()
    assert where is not None
    object_store.delete(pack_key(where[0]))
    prefetched = PrefetchedChunks(BlobStore(object_store), packed_slices(entries))
    assert len(prefetched) == 0 and prefetched.requests == 1
    with pytest.raises(ObjectNotFound):
        stage(prefetched, digest, where)
