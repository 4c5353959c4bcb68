"""Re-runs store their plan as a layer on the previous job's (scheduler/plan.py plan_layer):
run end to end on the embedded default, the layered plan reads whole in another process, each
datum reads as this job's input commit (list-datum, $<input>_COMMIT), and the output is the
one a whole plan gives."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

from scheduler.job_records import JobState
from scheduler.queries import JobQueries
from scheduler.records import JobPlan
from scheduler.store import PpsStore
from scheduler.cli.gc import scheduler_roots
from storage import layout
from storage.fsck import fsck
from storage.gc import collect_garbage
from storage.local import LocalObjectStore
from storage.repos import Pfs
from tests.scheduler.pipeline_helpers import COPY_SPEC, copy_pipeline, run_to_end
from worker.context import datum_env

SPEC = {
    **COPY_SPEC,
    "transform": {"cmd": ["sh", "-c", "cp $in /pfs/out/ && echo $in_COMMIT > /pfs/out/$(basename $in).commit"]},
}


def test_re_runs_store_layers_and_read_as_whole_plans(tmp_path: Path) -> None:
    # Given 40 files processed, then three re-runs of one new file each
    pfs = copy_pipeline(tmp_path, files=40, spec=SPEC)
    run_to_end(pfs)
    commits = []
    for n in range(3):
        commits.append(pfs.put_file("in", "master", f"/new{n}", f"new {n}\n".encode()).id)
        run_to_end(pfs)
    # Then the last two plans are layers: the first re-run's is whole (every datum turned skipped)
    fresh = PpsStore(LocalObjectStore(tmp_path))  # another process: nothing in memory
    jobs = fresh.job_markers("copy")
    stored = [JobPlan.model_validate_json(LocalObjectStore(tmp_path).get(layout.job_plan_key(j))) for j in jobs]
    assert [(p.base, p.depth, len(p.datums)) for p in stored] == [
        (None, 0, 40), (None, 0, 41), (jobs[1], 1, 1), (jobs[2], 2, 1),
    ]
    # And every index after the first is a layer on the one before
    indexes = [fresh.stored_index("copy", j) for j in jobs]
    assert [(i.base, i.depth, len(i.entries)) for i in indexes if i is not None] == [
        (None, 0, 40), (jobs[0], 1, 1), (jobs[1], 2, 1), (jobs[2], 3, 1),
    ]
    last_index = fresh.read_index("copy", jobs[-1])
    assert last_index is not None and len(last_index.entries) == 43
    # And the last plan reads whole, each datum at this job's commit, only the new file run
    last = fresh.read_plan(jobs[-1])
    assert last is not None and [d.inputs[0].path for d in last.datums] == sorted(
        [f"/f{i}" for i in range(40)] + ["/new0", "/new1", "/new2"])
    assert [d.inputs[0].path for d in last.datums if not d.skip] == ["/new2"]
    assert {datum_env(last, d)["in_COMMIT"] for d in last.datums} == {commits[-1]}
    _, rows = JobQueries(Pfs(LocalObjectStore(tmp_path))).datums(jobs[-1])
    assert {i.commit for d, _ in rows for i in d.inputs} == {commits[-1]}
    # And the output holds every file, each new one stamped by the job that ran it
    status = fresh.read_status(jobs[-1])
    assert status is not None and status.state == JobState.JOB_SUCCESS
    assert (status.data_processed, status.data_skipped) == (1, 42)
    assert len(pfs.list_file("copy", "master")) == 86
    for n, commit in enumerate(commits):
        out = io.BytesIO()
        pfs.get_file("copy", "master", f"/new{n}.commit", out)
        assert out.getvalue() == f"{commit}\n".encode()


def test_garbage_collect_keeps_what_layers_reach(tmp_path: Path) -> None:
    # Given re-runs whose plans and indexes are layers
    pfs = copy_pipeline(tmp_path, files=40, spec=SPEC)
    run_to_end(pfs)
    for n in range(3):
        pfs.put_file("in", "master", f"/new{n}", f"new {n}\n".encode())
        run_to_end(pfs)
    # When garbage is collected with no grace, then the input changes once more and re-runs
    objects = LocalObjectStore(tmp_path)
    collect_garbage(objects, timedelta(0), scheduler_roots(objects))
    pfs = Pfs(LocalObjectStore(tmp_path))
    pfs.put_file("in", "master", "/new3", b"new 3\n")
    run_to_end(pfs)
    # Then every output a skipped datum reuses is still there, and the store checks out
    assert fsck(objects).ok
    out = io.BytesIO()
    pfs.get_file("copy", "master", "/f7", out)
    assert out.getvalue() == b"7\n"
    assert len(pfs.list_file("copy", "master")) == 88
