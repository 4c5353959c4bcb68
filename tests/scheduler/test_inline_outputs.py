"""Datums' tiny outputs ride in their results and are packed at the job's finish (storage format 3):
the pure packing, the result's check of its bytes, and real embedded runs on the local folder and
on moto S3, including a result damaged between the datums' run and the finish."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.cli.embedded import settle
from scheduler.cli.gc import scheduler_roots
from scheduler.inline_outputs import pack_inline
from scheduler.job_records import DatumResult, DatumState, JobState, inline_text
from scheduler.pipelines import Pipelines
from scheduler.queries import JobQueries
from scheduler.records import IndexEntry
from scheduler.settings import SchedulerSettings
from scheduler.store import PpsStore
from storage import layout
from storage.errors import DataCorrupted
from storage.fsck import fsck
from storage.gc import collect_garbage
from storage.model import FileEntry
from storage.objects import MemoryObjectStore, ObjectStore
from storage.repos import Pfs
from tests.fixtures.s3 import fresh_bucket
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
COPY = {
    "pipeline": {"name": "copy"},
    "transform": {"cmd": ["sh", "-c", "cp /pfs/in/* /pfs/out/"]},
    "input": {"pfs": {"repo": "in", "glob": "/*"}},
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def carrying(datum: str, files: dict[str, bytes]) -> DatumResult:
    return DatumResult(
        job_id="j", datum_id=datum, datum_hash=datum, state=DatumState.SUCCESS,
        outputs={path: FileEntry(chunks=(sha(data),), size=len(data)) for path, data in files.items()},
        inline={sha(data): inline_text(data) for data in files.values()},
    )


# -- pure parts ------------------------------------------------------------------------------
def test_a_result_round_trips_and_an_empty_inline_is_not_written() -> None:
    result = carrying("d1", {"/a": b"alpha", "/e": b""})
    again = DatumResult.model_validate_json(result.model_dump_json())
    assert again.inline_chunks() == {sha(b"alpha"): b"alpha", sha(b""): b""}
    assert "inline" not in json.loads(DatumResult(job_id="j", datum_id="d", datum_hash="d", state="SUCCESS").model_dump_json())


@pytest.mark.parametrize("damage", [
    lambda text: "!!" + text,  # not base64
    lambda text: inline_text(b"other bytes"),  # base64 of bytes that are not the chunk
])
def test_a_result_whose_bytes_do_not_match_their_id_is_refused_naming_the_datum(damage: Callable[[str], str]) -> None:
    result = carrying("d7", {"/a": b"alpha"})
    bad = result.model_copy(update={"inline": {sha(b"alpha"): damage(inline_text(b"alpha"))}})
    with pytest.raises(DataCorrupted, match=r"datum 'd7' in job 'j' holds output bytes that do not match their hash"):
        bad.inline_chunks()


def test_a_result_whose_entry_gives_another_size_is_refused() -> None:
    result = carrying("d8", {"/a": b"alpha"})
    bad = result.model_copy(update={"outputs": {"/a": FileEntry(chunks=(sha(b"alpha"),), size=4)}})
    with pytest.raises(DataCorrupted, match=r"datum 'd8' .* gives output '/a' 4 bytes, but carries 5"):
        bad.inline_chunks()


def test_inline_chunks_go_into_one_pack_shared_by_datums_and_the_same_pack_twice() -> None:
    # Given two datums carrying outputs (one body in both), and a third whose output is stored
    objects = MemoryObjectStore()
    one, two = carrying("d1", {"/x": b"same", "/y": b"one"}), carrying("d2", {"/z": b"same"})
    stored = FileEntry(chunks=("f" * 64,), size=9)
    entries = {
        "d1": IndexEntry(sort_key=("1",), outputs=one.outputs), "d2": IndexEntry(sort_key=("2",), outputs=two.outputs),
        "d3": IndexEntry(sort_key=("3",), outputs={"/s": stored}),
    }
    carried = {"d1": one.inline_chunks(), "d2": two.inline_chunks()}
    # When packed, twice (a finish repeated after a crash)
    first = pack_inline(objects, entries, carried)
    second = pack_inline(objects, entries, carried)
    # Then the same single pack holds each body once, every carried entry is placed in it,
    # the stored entry is left alone, and the second pass wrote nothing new
    assert first == second
    packs = [key for key in objects.list(layout.PACK_PREFIX)]
    assert len(packs) == 1
    placed = [entry for index in first.values() for entry in index.outputs.values() if entry.packed]
    assert len(placed) == 3 and {entry.packed[0][0] for entry in placed} == {packs[0].rsplit("/", 1)[1]}
    assert first["d1"].outputs["/x"] == first["d2"].outputs["/z"]
    assert first["d3"].outputs["/s"] == stored
    assert objects.get(packs[0]) in (b"sameone", b"onesame")


def test_nothing_carried_writes_nothing() -> None:
    objects = MemoryObjectStore()
    entries = {"d": IndexEntry(sort_key=("1",), outputs={"/s": FileEntry(chunks=("f" * 64,), size=1)})}
    assert pack_inline(objects, entries, {}) == entries
    assert list(objects.list("")) == []


# -- real embedded runs ----------------------------------------------------------------------
@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[ObjectStore, list[str]]:
    """A store, and the argv that opens it again in a child process."""
    if request.param == "local":
        from storage.local import LocalObjectStore

        return LocalObjectStore(tmp_path / "store"), ["local", str(tmp_path / "store")]
    from storage.s3 import S3ObjectStore

    server = request.getfixturevalue("moto_server")
    bucket = fresh_bucket()
    return S3ObjectStore(bucket, "herd", server.url), ["s3", bucket, server.url]


def run(pfs: Pfs) -> None:
    settle(pfs, SchedulerSettings(broker=None), WorkerSettings(runtime="local"))


def read(pfs: Pfs, path: str) -> bytes:
    """A file of the output commit, through get-file's verified read."""
    out = io.BytesIO()
    pfs.get_file("copy", "master", path, out)
    return out.getvalue()


def files(n: int, start: int = 0) -> list[tuple[str, bytes]]:
    return [(f"/f{i:03d}", f"line {i}\n".encode()) for i in range(start, start + n)]


def test_tiny_outputs_are_packed_at_finish_and_read_back_verified(store: tuple[ObjectStore, list[str]]) -> None:
    # Given 30 one-line input files and a pipeline copying each
    objects, _ = store
    pfs = Pfs(objects)
    pfs.create_repo("in")
    pfs.put_files("in", "master", files(30))
    Pipelines(pfs).create(dict(COPY))
    # When the job runs
    run(pfs)
    # Then it succeeded; every result carried its output and no output became a loose blob
    (info, status), = JobQueries(pfs).list("copy")
    assert status.state == JobState.JOB_SUCCESS and status.data_processed == 30
    results = list(PpsStore(objects).iter_results(info.id))
    assert len(results) == 30 and all(len(r.inline) == 1 for r in results)
    manifest = pfs.read_manifest(pfs.inspect_commit("copy", "master"))
    assert len(manifest.files) == 30
    assert all(entry.packed for entry in manifest.files.values())
    assert not any(objects.exists(layout.blob_key(e.chunks[0])) for e in manifest.files.values())
    assert int(objects.get(layout.FORMAT_KEY)) >= layout.INLINE_FORMAT  # a new store: the current format
    # And every file reads back (hashed against its id) with the bytes the datum wrote
    for path, data in files(30):
        assert read(pfs, path) == data
    # When one file is added: the new job runs that datum only and reuses the 30 packed outputs
    pfs.put_files("in", "master", files(1, start=30))
    run(pfs)
    newest = JobQueries(pfs).list("copy")[0][1]
    assert (newest.state, newest.data_processed, newest.data_skipped) == (JobState.JOB_SUCCESS, 1, 30)
    assert [read(pfs, p) for p, _ in files(31)] == [d for _, d in files(31)]
    # And garbage-collect keeps every packed output; fsck finds the store whole
    collect_garbage(objects, timedelta(0), extra_roots=scheduler_roots(objects), settle=0)
    assert [read(pfs, p) for p, _ in files(31)] == [d for _, d in files(31)]
    assert fsck(objects).ok


CHILD = """
import sys
from scheduler.cli.embedded import settle
from scheduler.cli.gc import scheduler_roots
from scheduler.settings import SchedulerSettings
from storage.repos import Pfs
from worker.settings import WorkerSettings
kind, *args = sys.argv[1:]
if kind == "local":
    from storage.local import LocalObjectStore
    objects = LocalObjectStore(args[0])
else:
    from storage.s3 import S3ObjectStore
    objects = S3ObjectStore(args[0], "herd", args[1])
settle(Pfs(objects), SchedulerSettings(broker=None), WorkerSettings(runtime="local"))
"""


def test_a_result_damaged_before_the_finish_fails_its_datum_and_the_next_job_runs_it(
    store: tuple[ObjectStore, list[str]],
) -> None:
    # Given a scheduler killed just before it finished a job of 5 datums (results stored)
    objects, argv = store
    pfs = Pfs(objects)
    pfs.create_repo("in")
    pfs.put_files("in", "master", files(5))
    Pipelines(pfs).create(dict(COPY))
    env = {**os.environ, "HERD_FAILPOINTS": "scheduler.before_finish"}
    child = subprocess.run([sys.executable, "-c", CHILD, *argv], env=env, cwd=ROOT, capture_output=True)
    assert child.returncode == 137, child.stderr.decode()[-2000:]
    # And one result's carried bytes flipped in storage
    (info, _), = JobQueries(pfs).list("copy")
    keys = sorted(objects.list(layout.results_prefix(info.id)))
    assert len(keys) == 5
    body = json.loads(objects.get(keys[2]))
    digest, text = next(iter(body["inline"].items()))
    body["inline"][digest] = inline_text(b"line 666\n")
    objects.put(keys[2], json.dumps(body).encode())
    damaged = body["datum_id"]
    # When the scheduler runs again
    run(pfs)
    # Then the job failed naming that datum and why; the other 4 are in its datum index
    status = JobQueries(pfs).list("copy")[0][1]
    assert status.state == JobState.JOB_FAILURE
    assert damaged in status.reason and "do not match their hash" in status.reason
    index = PpsStore(objects).read_index("copy", info.id)
    assert index is not None and len(index.entries) == 4
    # When another file is committed: the next job runs the damaged datum again and the new one
    pfs.put_files("in", "master", files(1, start=5))
    run(pfs)
    newest = JobQueries(pfs).list("copy")[0][1]
    assert (newest.state, newest.data_processed, newest.data_skipped) == (JobState.JOB_SUCCESS, 2, 4)
    assert [read(pfs, p) for p, _ in files(6)] == [d for _, d in files(6)]
