"""A crash at any point leaves storage consistent and a restarted scheduler finishes the work,
each output exactly once. Crashes are simulated by stopping between the steps of a job."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler import engine
from scheduler.dispatch_inprocess import InProcessDispatcher
from scheduler.jobs import DatumState, JobState
from scheduler.loop import Scheduler
from scheduler.messages import DatumBatch
from scheduler.pipelines import Pipelines
from scheduler.store import RecordStore
from storage.local import LocalObjectStore
from storage.repos import Pfs
from worker.datum import process_batch

SPEC = {
    "pipeline": {"name": "copy"},
    "transform": {"cmd": ["sh", "-c", "cp $in /pfs/out/"]},
    "input": {"pfs": {"repo": "in", "glob": "/*"}},
}


class NoDispatch:
    """A dispatcher that loses every message, as a broker that died would."""

    def submit(self, batch: DatumBatch) -> None:
        pass

    def in_flight(self, job_id: str) -> set[int]:
        return set()

    def wait(self, timeout: float) -> list:
        return []

    def close(self) -> None:
        pass


@pytest.fixture
def pfs(tmp_path: Path) -> Pfs:
    pfs = Pfs(LocalObjectStore(tmp_path / "store"))
    pfs.create_repo("in")
    pfs.put_files("in", "master", [(f"/f{i}", f"{i}\n".encode()) for i in range(5)])
    Pipelines(pfs).create(dict(SPEC))
    return pfs


def run_to_end(pfs: Pfs) -> None:
    dispatcher = InProcessDispatcher(pfs.objects, threads=2)
    try:
        Scheduler(pfs, dispatcher, parallelism=2).run_until_idle(timeout=120)
    finally:
        dispatcher.close()


def only_job(pfs: Pfs):
    records = RecordStore(pfs.objects)
    (job_id,) = records.job_markers("copy")
    return job_id, records


def test_lost_messages_are_sent_again_by_a_restarted_scheduler(pfs: Pfs) -> None:
    # Given a scheduler that planned the job and "sent" datums that were lost
    Scheduler(pfs, NoDispatch()).tick()
    job_id, records = only_job(pfs)
    assert records.read_plan(job_id) is not None
    assert records.read_status(job_id).state == JobState.JOB_RUNNING
    # When a new scheduler runs
    run_to_end(pfs)
    # Then the job finishes with every output once
    assert records.read_status(job_id).state == JobState.JOB_SUCCESS
    assert sorted(pfs.read_manifest(pfs.inspect_commit("copy", "master")).files) == [f"/f{i}" for i in range(5)]
    assert len(pfs.list_commits("copy", "master")) == 1


def test_crash_after_output_commit_before_status_writes_no_second_commit(
    pfs: Pfs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given every datum done, and a scheduler that dies right after writing the output commit
    Scheduler(pfs, NoDispatch()).tick()
    job_id, records = only_job(pfs)
    plan = records.read_plan(job_id)
    process_batch(DatumBatch(job_id=job_id, datums=tuple(range(len(plan.datums)))).model_dump(), objects=pfs.objects)

    class Crash(Exception):
        pass

    def crash(*args, **kwargs):
        raise Crash()

    with monkeypatch.context() as patch:
        patch.setattr(engine, "_set_state", crash)
        with pytest.raises(Crash):
            Scheduler(pfs, NoDispatch()).tick()
    assert pfs.inspect_commit("copy", "master").id == job_id
    assert records.read_status(job_id).state == JobState.JOB_RUNNING
    # When the scheduler restarts and finishes the job
    run_to_end(pfs)
    # Then the output branch holds one commit, the job's, with every output
    commits = pfs.list_commits("copy", "master")
    assert [c.id for c in commits] == [job_id]
    assert len(pfs.read_manifest(commits[0]).files) == 5
    assert records.read_status(job_id).state == JobState.JOB_SUCCESS


def test_a_batch_delivered_twice_runs_each_datum_once(pfs: Pfs) -> None:
    Scheduler(pfs, NoDispatch()).tick()
    job_id, records = only_job(pfs)
    message = DatumBatch(job_id=job_id, datums=(0, 1)).model_dump()
    process_batch(message, objects=pfs.objects)
    process_batch(message, objects=pfs.objects)
    plan = records.read_plan(job_id)
    for index in (0, 1):
        assert [a["attempt"] for a in records.attempts(job_id, plan.datums[index].id)] == [1]


def test_a_datum_that_keeps_killing_its_worker_fails_after_datum_tries(pfs: Pfs) -> None:
    # Given a datum whose every attempt was claimed by a worker that then died (no result)
    Scheduler(pfs, NoDispatch()).tick()
    job_id, records = only_job(pfs)
    datum = records.read_plan(job_id).datums[0]
    for _ in range(3):
        records.claim_attempt(job_id, datum.id, 3, {"worker": "dead", "lease_until": 0})
    # When it is delivered once more
    process_batch(DatumBatch(job_id=job_id, datums=(0,)).model_dump(), objects=pfs.objects)
    # Then it is not run again but failed, naming the reason
    result = records.read_result(job_id, datum.id)
    assert result.state == DatumState.FAILED and "datum_tries" in result.reason
    run_to_end(pfs)
    assert records.read_status(job_id).state == JobState.JOB_FAILURE
