"""PpsStore's caches of create-only records: shared by every PpsStore of one object store in a
process (the scheduler's and the embedded workers'), bounded, never between two stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.records import DatumIndex, IndexEntry, JobPlan, PlannedDatum
from scheduler.job_records import JobInfo
from scheduler.store import PLAN_DATUMS_KEPT, PLANS_KEPT, PpsStore, _dump, dump_in_parts, now
from storage.local import LocalObjectStore
from storage import layout
from storage.errors import DataCorrupted
from storage.model import CommitRef, FileEntry
from tests.fixtures.s3 import s3_store  # noqa: F401 - fixtures
from tests.storage.counting_store import CountingStore


def plan(job_id: str) -> JobPlan:
    return JobPlan(job_id=job_id, pipeline="p", pipeline_version=1, spec={}, salt="s", inputs=())


def test_a_plan_written_by_the_scheduler_is_read_by_a_worker_of_the_same_store_without_a_read(tmp_path: Path) -> None:
    objects = CountingStore(LocalObjectStore(tmp_path))
    PpsStore(objects).write_plan(plan("a" * 32))
    read_before = objects.bytes_out
    assert PpsStore(objects).read_plan("a" * 32) == plan("a" * 32)
    assert objects.bytes_out == read_before


def test_another_store_on_the_same_folder_reads_the_plan_from_storage(tmp_path: Path) -> None:
    PpsStore(LocalObjectStore(tmp_path)).write_plan(plan("a" * 32))
    other = CountingStore(LocalObjectStore(tmp_path))
    assert PpsStore(other).read_plan("a" * 32) == plan("a" * 32)
    assert other.bytes_out > 0


def test_the_shared_plans_are_bounded(tmp_path: Path) -> None:
    objects = LocalObjectStore(tmp_path)
    records = PpsStore(objects)
    for n in range(PLANS_KEPT * 2 + 1):
        records.write_plan(plan(f"{n:032x}"))
    assert 0 < len(records._plans) <= PLANS_KEPT
    assert PpsStore(objects).read_plan(f"{0:032x}") == plan(f"{0:032x}")  # dropped from memory, read again


def one_index(job_id: str, path: str = "/a") -> DatumIndex:
    return DatumIndex(job_id=job_id, entries={
        "h": IndexEntry(sort_key=(path,), outputs={path: FileEntry(chunks=("0" * 64,), size=1)}),
    })


def test_an_index_is_read_once(tmp_path: Path) -> None:
    PpsStore(LocalObjectStore(tmp_path)).write_index("p", one_index("j" * 32))  # another process's
    objects = CountingStore(LocalObjectStore(tmp_path))
    records = PpsStore(objects)
    assert records.read_index("p", "j" * 32) == one_index("j" * 32)
    read_once = objects.bytes_out
    assert read_once > 0
    assert records.read_index("p", "j" * 32) == one_index("j" * 32)
    assert PpsStore(objects).read_index("p", "j" * 32) == one_index("j" * 32)  # shared in this process
    assert objects.bytes_out == read_once
    assert records.read_index("p", "k" * 32) is None


def test_the_index_a_job_wrote_is_planned_against_without_a_read(tmp_path: Path) -> None:
    objects = CountingStore(LocalObjectStore(tmp_path))
    PpsStore(objects).write_index("p", one_index("j" * 32))
    assert PpsStore(objects).read_index("p", "j" * 32) == one_index("j" * 32)
    assert objects.bytes_out == 0


def test_an_index_written_first_by_another_is_the_one_read(tmp_path: Path) -> None:
    # Given another process's index stored under the key, then this process's differing one refused
    PpsStore(LocalObjectStore(tmp_path)).write_index("p", one_index("j" * 32, "/theirs"))
    objects = LocalObjectStore(tmp_path)
    PpsStore(objects).write_index("p", one_index("j" * 32, "/mine"))
    # Then the stored one is what this process reads
    assert PpsStore(objects).read_index("p", "j" * 32) == one_index("j" * 32, "/theirs")


def test_the_shared_indexes_are_bounded_and_a_deleted_pipeline_drops_its_own(tmp_path: Path) -> None:
    from scheduler.store import INDEXES_KEPT

    objects = LocalObjectStore(tmp_path)
    records = PpsStore(objects)
    for n in range(INDEXES_KEPT * 2 + 1):
        records.write_index("p", one_index(f"{n:032x}"))
    assert 0 < len(records._indexes) <= INDEXES_KEPT
    assert PpsStore(objects).read_index("p", f"{0:032x}") == one_index(f"{0:032x}")  # read again
    records.write_index("q", one_index("q" * 32))
    records.delete_pipeline("p")
    assert [key[0] for key in records._indexes] == ["q"]


def test_the_shared_plans_are_bounded_by_datums_too(tmp_path: Path) -> None:
    records = PpsStore(LocalObjectStore(tmp_path))
    datums = tuple(PlannedDatum(f"{n:064x}", f"{n:064x}", ()) for n in range(PLAN_DATUMS_KEPT // 2 + 1))
    for n in range(3):
        records.write_plan(plan(f"{n:032x}").model_copy(update={"datums": datums}))
    assert len(records._plans) == 1  # two such plans are over the bound: the older ones went


def planned(n: int) -> PlannedDatum:
    from scheduler.records import PlannedInput

    entry = FileEntry(chunks=(f"{n:064x}",), packed=((f"{n % 3:064x}", n, 1),), size=1)
    return PlannedDatum(f"{n:064x}", f"{n + 1:064x}", (PlannedInput("in", "in", "master", "c" * 32, f"/f{n}", {f"/f{n}": entry}),))


@pytest.mark.parametrize("count", [0, 1, 2, 3, 5, 8])
def test_a_plan_and_an_index_made_in_parts_are_the_bytes_made_whole(count: int) -> None:
    whole = plan("a" * 32).model_copy(update={"datums": tuple(planned(n) for n in range(count))})
    assert b"".join(dump_in_parts(whole, "datums", per_part=2)) == _dump(whole)
    index = DatumIndex(job_id="j" * 32, entries={
        f"h{n}": IndexEntry(sort_key=(f"/f{n}",), outputs={f"/o{n}": FileEntry(chunks=("0" * 64,), size=n)})
        for n in range(count)
    })
    assert b"".join(dump_in_parts(index, "entries", per_part=2)) == _dump(index)


def test_only_a_last_collection_field_is_made_in_parts() -> None:
    with pytest.raises(TypeError, match="JobPlan.inputs"):
        list(dump_in_parts(plan("a" * 32), "inputs"))


def test_a_plan_written_in_parts_reads_back_equal_from_another_store(tmp_path: Path) -> None:
    written = plan("b" * 32).model_copy(update={"datums": tuple(planned(n) for n in range(2_500))})
    PpsStore(LocalObjectStore(tmp_path)).write_plan(written)
    assert PpsStore(LocalObjectStore(tmp_path)).read_plan("b" * 32) == written


def run_copy_job(objects: CountingStore, files: int) -> str:
    """An embedded run of a copy pipeline over `files` one-line files; the job's id."""
    from scheduler.dispatch_inprocess import InProcessDispatcher
    from scheduler.loop import Scheduler
    from scheduler.pipelines import Pipelines
    from storage.repos import Pfs
    from worker.context import release_context
    from worker.datum import process_batch

    pfs = Pfs(objects)
    pfs.create_repo("in")
    pfs.put_files("in", "master", [(f"/f{i:03d}", f"{i}\n".encode()) for i in range(files)])
    Pipelines(pfs).create({
        "pipeline": {"name": "copy"},
        "transform": {"cmd": ["sh", "-c", "cp $in /pfs/out/"]},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
    })
    dispatcher = InProcessDispatcher(
        objects, 2, run_batch=lambda message, objects: process_batch(message, objects, runtime="local"), release=release_context,
    )
    try:
        Scheduler(pfs, dispatcher, parallelism=2).run_until_idle(timeout=120)
    finally:
        dispatcher.close()
    assert len(pfs.list_file("copy", "master", "/")) == files
    (job_id,) = PpsStore(objects).job_markers("copy")
    return job_id


def test_the_results_a_process_stored_are_merged_without_reading_them_back(tmp_path: Path) -> None:
    # Given a job whose results the embedded workers of this process stored
    objects = CountingStore(LocalObjectStore(tmp_path))
    job_id = run_copy_job(objects, 12)
    # When its results are listed again by this process
    before = objects.bytes_out
    kept = list(PpsStore(objects).iter_results(job_id))
    # Then no result was read, and they equal what another process reads from storage
    assert objects.bytes_out == before
    assert kept == list(PpsStore(LocalObjectStore(tmp_path)).iter_results(job_id))
    assert len(kept) == 12


def test_a_kept_result_whose_key_is_gone_is_not_seen(tmp_path: Path) -> None:
    from storage import layout

    objects = CountingStore(LocalObjectStore(tmp_path))
    job_id = run_copy_job(objects, 3)
    records = PpsStore(objects)
    first = next(records.iter_results(job_id))
    objects.delete(layout.result_key(job_id, first.datum_id))  # as another process's delete would
    assert first.datum_id not in {r.datum_id for r in records.iter_results(job_id)}
    records.delete_job(job_id)
    assert records.read_result(job_id, first.datum_id) is None
    assert list(records.iter_results(job_id)) == []


def test_the_kept_results_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import scheduler.store as store

    monkeypatch.setattr(store, "RESULTS_KEPT", 5)
    objects = CountingStore(LocalObjectStore(tmp_path))
    job_id = run_copy_job(objects, 12)
    records = PpsStore(objects)
    assert 0 < sum(len(job) for job in records._results.values()) <= 5
    assert len(list(records.iter_results(job_id))) == 12  # the others read from storage


def test_results_kept_of_a_deleted_job_are_not_a_new_plans(tmp_path: Path) -> None:
    from scheduler.job_records import DatumResult, DatumState

    # Given a result this process stored and kept for job J
    records = PpsStore(LocalObjectStore(tmp_path))
    records.write_plan(plan("c" * 32))
    assert records.put_result(DatumResult(job_id="c" * 32, datum_id="d", datum_hash="h", state=DatumState.FAILED))
    # When another process deletes J, and J is planned again (same pipeline, salt and inputs)
    elsewhere = PpsStore(LocalObjectStore(tmp_path))
    elsewhere.delete_job("c" * 32)
    records.write_plan(plan("c" * 32))
    elsewhere.put_result(DatumResult(job_id="c" * 32, datum_id="d", datum_hash="h", state=DatumState.SUCCESS))
    # Then this process sees the new job's result, not the one it kept
    assert [r.state for r in records.iter_results("c" * 32)] == [DatumState.SUCCESS]
    assert records.read_result("c" * 32, "d").state == DatumState.SUCCESS  # type: ignore[union-attr]


# ---- plans stored as layers ------------------------------------------------------------------


def _datum(path: str, commit: str, skip: bool = False) -> PlannedDatum:
    from scheduler.records import PlannedInput

    entry = FileEntry(chunks=("0" * 64,), size=1)
    return PlannedDatum(f"id{path}", f"hash{path}", (PlannedInput("in", "in", "master", commit, path, {path: entry}),),
                        skip)


@pytest.mark.parametrize("where", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_a_layered_plan_is_read_whole_by_another_process(where: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    def store() -> object:  # a new ObjectStore each time: another process, with nothing in memory
        if where == "local":
            return LocalObjectStore(tmp_path)
        return request.getfixturevalue("s3_store")(bucket=bucket)

    bucket = "herd-test-layers"
    # Given a whole plan, and a layer on it that drops one datum, skips one and adds one
    base = plan("b" * 32).model_copy(update={"datums": (_datum("/a", "c1"), _datum("/b", "c1"), _datum("/c", "c1"))})
    layer = (_datum("/bb", "c2"),)
    whole = (_datum("/a", "c1", skip=True), _datum("/bb", "c2"), _datum("/c", "c1"))
    on_top = plan("t" * 32).model_copy(update={
        "base": "b" * 32, "depth": 1, "dropped": ("id/b",), "flipped": ("id/a",), "datums": whole,
    })
    PpsStore(store()).write_plan(base)  # type: ignore[arg-type]
    PpsStore(store()).write_plan(on_top, layer)  # type: ignore[arg-type]
    # When another process reads it; Then its datums are whole, in order, and only the layer was stored
    read = PpsStore(store()).read_plan("t" * 32)  # type: ignore[arg-type]
    assert read is not None and read.datums == whole
    stored = JobPlan.model_validate_json(store().get(layout.job_plan_key("t" * 32)))  # type: ignore[attr-defined]
    assert stored.datums == layer and stored.base == "b" * 32
    # And each datum reads as this job's input commit when the plan names it
    current = read.model_copy(update={"inputs": (CommitRef(repo="in", id="c2", branch="master"),)})
    assert {i.commit for d in read.datums for i in current.current(d).inputs} == {"c2"}


def test_a_layer_whose_base_is_gone_is_refused_naming_both(tmp_path: Path) -> None:
    # Given a layer stored on a plan that is not there (damage: jobs go with their pipeline only)
    on_top = plan("t" * 32).model_copy(update={"base": "b" * 32, "depth": 1, "datums": (_datum("/a", "c2"),)})
    PpsStore(LocalObjectStore(tmp_path)).write_plan(on_top, on_top.datums)
    # When another process reads it; Then it is refused as corrupt, naming the record and the base
    with pytest.raises(DataCorrupted, match=r"jobs/t{32}/plan'.*'b{32}'.*missing"):
        PpsStore(LocalObjectStore(tmp_path)).read_plan("t" * 32)


def test_a_layer_cannot_name_itself_or_a_deeper_plan(tmp_path: Path) -> None:
    # Given a layer claiming to be its own base (a loop a reader would follow forever)
    looped = plan("t" * 32).model_copy(update={"base": "t" * 32, "depth": 1})
    PpsStore(LocalObjectStore(tmp_path)).write_plan(looped, ())
    # When it is read; Then it is refused, not followed
    with pytest.raises(DataCorrupted, match="layer"):
        PpsStore(LocalObjectStore(tmp_path)).read_plan("t" * 32)


@pytest.mark.parametrize("where", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_a_layered_index_is_read_whole_by_another_process(where: str, tmp_path: Path,
                                                         request: pytest.FixtureRequest) -> None:
    def store() -> object:
        if where == "local":
            return LocalObjectStore(tmp_path)
        return request.getfixturevalue("s3_store")(bucket="herd-test-index-layers")

    # Given a whole index, and a layer on it that removes one entry and adds one
    base = DatumIndex(job_id="b" * 32, entries={**one_index("b" * 32, "/a").entries, "h2": one_index("x", "/b").entries["h"]})
    added = {"h3": one_index("x", "/c").entries["h"]}
    on_top = DatumIndex(job_id="t" * 32, base="b" * 32, depth=1, removed=("h2",),
                        entries={"h": base.entries["h"], **added})
    PpsStore(store()).write_index("p", base)  # type: ignore[arg-type]
    PpsStore(store()).write_index("p", on_top, added)  # type: ignore[arg-type]
    # When another process reads it; Then it is whole, and only the layer was stored
    read = PpsStore(store()).read_index("p", "t" * 32)  # type: ignore[arg-type]
    assert read is not None and read.entries == on_top.entries
    stored = PpsStore(store()).stored_index("p", "t" * 32)  # type: ignore[arg-type]
    assert stored is not None and stored.entries == added and stored.removed == ("h2",)


def test_an_index_layer_whose_base_is_gone_is_refused(tmp_path: Path) -> None:
    on_top = DatumIndex(job_id="t" * 32, base="b" * 32, depth=1, entries=one_index("t" * 32).entries)
    PpsStore(LocalObjectStore(tmp_path)).write_index("p", on_top, dict(on_top.entries))
    with pytest.raises(DataCorrupted, match=r"index/t{32}'.*'b{32}'.*missing"):
        PpsStore(LocalObjectStore(tmp_path)).read_index("p", "t" * 32)


def test_deleting_a_pipeline_removes_its_indexes_newest_first(tmp_path: Path) -> None:
    # Given a pipeline's jobs whose indexes are layers on the ones before
    objects = CountingStore(LocalObjectStore(tmp_path))
    records = PpsStore(objects)
    jobs = [f"{n:032x}" for n in range(3)]
    for n, job_id in enumerate(jobs):
        records.create_job(JobInfo(id=job_id, pipeline="p", pipeline_version=1, salt="s", inputs=(), created=now(),
                                   output_repo="p", output_branch="master"))
        records.write_index("p", DatumIndex(job_id=job_id, base=jobs[n - 1] if n else None, depth=n))
    deleted: list[str] = []
    real = objects.delete
    objects.delete = lambda key: (deleted.append(key), real(key))[1]  # type: ignore[method-assign]
    # When the pipeline's records are deleted; Then the indexes go newest first, before the rest
    records.delete_pipeline("p")
    assert deleted[:3] == [layout.index_key("p", j) for j in reversed(jobs)]


def test_indexes_that_name_each_other_are_refused_not_followed(tmp_path: Path) -> None:
    # Given two index layers crafted to be each other's base (a loop no herd writes)
    records = PpsStore(LocalObjectStore(tmp_path))
    records.write_index("p", DatumIndex(job_id="a" * 32, base="b" * 32, depth=2), {})
    records.write_index("p", DatumIndex(job_id="b" * 32, base="a" * 32, depth=1), {})
    # When either is read by another process; Then it is refused, naming the record
    for job_id in ("a" * 32, "b" * 32):
        with pytest.raises(DataCorrupted, match=r"is a layer \d deep where at most \d can be"):
            PpsStore(LocalObjectStore(tmp_path)).read_index("p", job_id)
