"""Duplicate deliveries of a datum: a live lease of another worker makes the copy step aside
without burning a try; an expired lease is taken over; a stored result is never run again."""

from __future__ import annotations

import time

import pytest

from scheduler.attempts import Attempt, AttemptStore
from scheduler.loop import Scheduler
from scheduler.messages import BatchOutcome, DatumBatch
from scheduler.pipelines import Pipelines
from scheduler.records import JobPlan
from scheduler.store import PpsStore
from storage.objects import MemoryObjectStore
from storage.repos import Pfs
from tests.fakes import LosingDispatcher
from worker.context import release_context
from worker.datum import process_batch


@pytest.fixture
def job(monkeypatch: pytest.MonkeyPatch):
    """A one-datum job planned in a memory store; yields (objects, plan, batch message)."""
    monkeypatch.delenv("HERD_BROKER", raising=False)
    objects = MemoryObjectStore()
    pfs = Pfs(objects)
    pfs.create_repo("in")
    pfs.put_files("in", "master", [("/x", b"x\n")])
    Pipelines(pfs).create({
        "pipeline": {"name": "p"}, "transform": {"cmd": ["sh", "-c", "cp $in /pfs/out/"]},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
    })
    capture = LosingDispatcher()
    Scheduler(pfs, capture, batch_size=1).tick()
    (batch,) = capture.batches
    plan = PpsStore(objects).read_plan(batch.job_id)
    assert isinstance(plan, JobPlan)
    yield objects, plan, batch.model_dump()
    release_context(objects)


def lease(plan: JobPlan, other: str, seconds: float) -> Attempt:
    return Attempt(
        job_id=plan.job_id, datum_id=plan.datums[0].id, number=1, worker=other, holder=f"{other}/abc",
        lease_until=time.time() + seconds,
    )


def test_live_lease_of_another_worker_defers_without_a_new_attempt(job) -> None:
    # Given attempt 1 of the datum held by another worker's live lease
    objects, plan, message = job
    records = PpsStore(objects)
    datum_id = plan.datums[0].id
    assert AttemptStore(objects).claim(lease(plan, "elsewhere", 60))

    # When a duplicate delivery of the batch arrives here
    outcome = BatchOutcome.model_validate(process_batch(message, objects=objects, runtime="local"))

    # Then it steps aside: deferred, no attempt claimed, no result written
    assert outcome.deferred == (0,) and outcome.done == ()
    assert [a.number for a in records.attempts(plan.job_id, datum_id)] == [1]
    assert records.read_result(plan.job_id, datum_id) is None


def test_expired_lease_is_taken_over_as_the_next_attempt(job) -> None:
    # Given attempt 1 by a worker that died (its lease ran out)
    objects, plan, message = job
    records = PpsStore(objects)
    datum_id = plan.datums[0].id
    assert AttemptStore(objects).claim(lease(plan, "dead", -1))

    # When the batch is delivered again
    outcome = BatchOutcome.model_validate(process_batch(message, objects=objects, runtime="local"))

    # Then this worker runs it as attempt 2 and its result is stored
    assert outcome.done == (0,)
    result = records.read_result(plan.job_id, datum_id)
    assert result is not None and result.attempt == 2


def test_a_datum_with_a_result_is_not_run_again(job) -> None:
    # Given the datum already ran once
    objects, plan, message = job
    records = PpsStore(objects)
    first = BatchOutcome.model_validate(process_batch(message, objects=objects, runtime="local"))
    assert first.done == (0,)

    # When the same batch is delivered again
    again = BatchOutcome.model_validate(process_batch(message, objects=objects, runtime="local"))

    # Then it reports done without a second attempt
    assert again.done == (0,)
    assert len(records.attempts(plan.job_id, plan.datums[0].id)) == 1
