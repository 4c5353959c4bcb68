"""A crash at any point leaves storage consistent and a restarted scheduler finishes the work,
each output exactly once. Crashes are simulated by stopping between the steps of a job."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler import lifecycle
from scheduler.cli.wiring import embedded_dispatcher
from scheduler.job_records import DatumState, JobState
from scheduler.loop import Scheduler
from scheduler.attempts import Attempt, AttemptStore
from scheduler.messages import BatchOutcome, DatumBatch
from scheduler.store import PpsStore
from storage.errors import StorageUnavailable
from storage.repos import Pfs
from tests.scheduler.pipeline_helpers import copy_pipeline, run_to_end
from tests.fakes import LosingDispatcher as NoDispatch
from worker.datum import process_batch

@pytest.fixture
def pfs(tmp_path: Path) -> Pfs:
    return copy_pipeline(tmp_path / "store")


def only_job(pfs: Pfs):
    records = PpsStore(pfs.objects)
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
        patch.setattr(lifecycle, "_set_state", crash)
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
        assert [a.number for a in records.attempts(job_id, plan.datums[index].id)] == [1]


def test_a_datum_that_keeps_killing_its_worker_fails_after_datum_tries(pfs: Pfs) -> None:
    # Given a datum whose every attempt was claimed by a worker that then died (no result)
    Scheduler(pfs, NoDispatch()).tick()
    job_id, records = only_job(pfs)
    datum = records.read_plan(job_id).datums[0]
    for number in (1, 2, 3):
        assert AttemptStore(pfs.objects).claim(Attempt(job_id=job_id, datum_id=datum.id, number=number, worker="dead"))
    # When it is delivered once more
    raw = process_batch(DatumBatch(job_id=job_id, datums=(0,)).model_dump(), objects=pfs.objects)
    # Then the worker does not run it but reports its tries used up, and leaves the verdict to the scheduler
    assert BatchOutcome.model_validate(raw).used_up == (0,)
    assert records.read_result(job_id, datum.id) is None
    run_to_end(pfs)
    result = records.read_result(job_id, datum.id)
    assert result.state == DatumState.FAILED and result.error == "tries_used_up" and "datum_tries (3)" in result.reason
    assert records.read_status(job_id).state == JobState.JOB_FAILURE


class BranchOutage:
    """The store, except that reading input branch heads fails as an S3 outage would."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.url = inner.url

    def read_versioned(self, key: str):
        if key.startswith("repos/in/branches/"):
            raise StorageUnavailable(f"the object store is unreachable (read '{key}')")
        return self.inner.read_versioned(key)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def test_an_outage_listing_an_input_branch_is_an_error_not_nothing_to_do(pfs: Pfs) -> None:
    # Given a pipeline owed a job, and storage failing when the scheduler reads the input branch
    broken = Pfs(BranchOutage(pfs.objects))
    dispatcher = embedded_dispatcher(broken.objects, threads=1)
    # When the embedded scheduler runs: Then it fails naming the outage (pachyderm#4151: never "done")
    with pytest.raises(StorageUnavailable, match="repos/in/branches/master"):
        Scheduler(broken, dispatcher).run_until_idle(timeout=60)
    dispatcher.close()
    assert PpsStore(pfs.objects).job_markers("copy") == []
    # And once storage answers, the job runs
    run_to_end(pfs)
    job_id, records = only_job(pfs)
    assert records.read_status(job_id).state == JobState.JOB_SUCCESS
