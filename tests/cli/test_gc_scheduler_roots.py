"""The scheduler's roots (scheduler/cli/gc.py) keep packed outputs by their packs, on memory,
the local folder and moto's S3 server: datum results of a running job and datum indexes name
FileEntry outputs whose chunks may lie in packs (storage format 2)."""

from __future__ import annotations

import pytest

from scheduler.cli.gc import scheduler_roots
from scheduler.job_records import DatumResult, DatumState
from scheduler.records import DatumIndex, IndexEntry
from scheduler.store import PpsStore
from storage.errors import DataCorrupted
from storage.layout import PACK_PREFIX
from storage.model import FileEntry
from storage.objects import ObjectStore
from storage.packs import PACK_MIN_CHUNKS
from tests.storage.packing import pack_chunks
from tests.storage.test_gc import gc


def packed(store: ObjectStore, tag: str) -> list[FileEntry]:
    """Entries of a fresh pack no commit names (a datum's outputs, not merged yet)."""
    entries = pack_chunks(store, [f"{tag} output {index}".encode() for index in range(PACK_MIN_CHUNKS)])
    assert all(entry.packed for entry in entries)
    return entries


def pack_of(entry: FileEntry) -> str:
    where = entry.packed[0]
    assert where is not None
    return where[0]


def packs_in(store: ObjectStore) -> set[str]:
    return {key.rsplit("/", 1)[1] for key in store.list(PACK_PREFIX)}


def result(job: str, datum: str, outputs: dict[str, FileEntry]) -> DatumResult:
    return DatumResult(job_id=job, datum_id=datum, datum_hash=datum, state=DatumState.SUCCESS, outputs=outputs)


def test_packed_outputs_of_results_and_indexes_keep_their_packs(object_store: ObjectStore) -> None:
    # Given a running job's datum result (no status record: running) naming one chunk of pack A,
    # a datum index naming one chunk of pack B, and pack C that nothing names
    records = PpsStore(object_store)
    in_result, in_index, unnamed = packed(object_store, "a"), packed(object_store, "b"), packed(object_store, "c")
    records.put_result(result("job1", "d1", {"/out/a": in_result[3]}))
    index = DatumIndex(job_id="job0", entries={"h": IndexEntry(sort_key=("x",), outputs={"/out/b": in_index[5]})})
    records.write_index("pipe", index)
    # When garbage-collect runs with the scheduler's roots and no grace
    report = gc(object_store, extra_roots=scheduler_roots(object_store))
    # Then A and B stay, C alone is freed
    assert packs_in(object_store) == {pack_of(in_result[0]), pack_of(in_index[0])}
    assert report.freed["packs"].count == 1 and report.kept_packs == 2
    assert pack_of(unnamed[0]) not in packs_in(object_store)


def test_a_result_whose_slices_do_not_match_stops_gc(object_store: ObjectStore) -> None:
    records = PpsStore(object_store)
    entries = packed(object_store, "a")
    packed(object_store, "garbage")
    bad = FileEntry(chunks=entries[0].chunks * 2, size=2 * entries[0].size, packed=entries[0].packed)
    records.put_result(result("job1", "d1", {"/out/bad": bad}))
    before = sorted(object_store.list(""))
    with pytest.raises(DataCorrupted, match="^garbage-collect stopped, nothing deleted: a datum result of job 'job1'"):
        gc(object_store, extra_roots=scheduler_roots(object_store))
    assert sorted(object_store.list("")) == before
