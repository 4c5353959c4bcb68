"""A batch's results stored by worker/result_writer.py: on a thread of their own for a store that
is not a local folder, in the batch's thread for one that is. Either way the writes run in
order, the outcome waits for every one, and an outage meeting a result's write still gives its
attempt back. The batches run for real: sandboxed user code, a local folder or a store in memory
(for S3's path, which tests/distributed/test_s3_faults.py runs against moto)."""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

import pytest

from scheduler.attempts import AttemptStore
from scheduler.job_records import DatumState
from scheduler.loop import Scheduler
from scheduler.messages import BatchOutcome, DatumBatch
from scheduler.pipelines import Pipelines
from scheduler.records import JobPlan
from scheduler.store import PpsStore
from storage.errors import Unavailable
from storage.local import LocalObjectStore
from storage.objects import MemoryObjectStore
from storage.repos import Pfs
from tests.fakes import LosingDispatcher
from worker.context import context_for, release_context
from worker.datum import process_batch
from worker.result_writer import ResultWriter

# ---- the writer alone -----------------------------------------------------------------------


def test_writes_run_in_order_on_one_thread_of_their_own() -> None:
    seen: list[tuple[int, str]] = []

    def write(index: int) -> int:
        time.sleep(0.01 if index == 0 else 0)  # a slow first write does not let the second pass it
        seen.append((index, threading.current_thread().name))
        return index * 10

    with ResultWriter[int]() as writer:
        for index in range(3):
            writer.submit(index, functools.partial(write, index))
        assert writer.wait() == {0: 0, 1: 10, 2: 20}
    assert [index for index, _ in seen] == [0, 1, 2]
    assert len({name for _, name in seen}) == 1 and seen[0][1] != threading.current_thread().name


def test_wait_raises_the_first_error_once_every_write_has_ended() -> None:
    ended: list[int] = []

    def write(index: int) -> int:
        ended.append(index)
        if index in (1, 2):
            raise Unavailable(f"write {index} met an outage")
        return index

    with ResultWriter[int]() as writer:
        for index in range(4):
            writer.submit(index, functools.partial(write, index))
        with pytest.raises(Unavailable, match="write 1"):
            writer.wait()
    assert ended == [0, 1, 2, 3]


def test_a_failed_write_is_seen_before_wait() -> None:
    with ResultWriter[None]() as writer:
        assert not writer.failed
        writer.submit(0, lambda: None)
        writer.wait()
        assert not writer.failed
        writer.submit(1, lambda: (_ for _ in ()).throw(Unavailable("down")))
        deadline = time.monotonic() + 5
        while not writer.failed and time.monotonic() < deadline:
            time.sleep(0.001)
        assert writer.failed
        with pytest.raises(Unavailable):
            writer.wait()


def test_unthreaded_writes_run_at_once_in_the_callers_thread_and_raise_at_wait() -> None:
    seen: list[str] = []

    def write(fail: bool) -> str:
        seen.append(threading.current_thread().name)
        if fail:
            raise Unavailable("down")
        return "stored"

    with ResultWriter[str](threaded=False) as writer:
        writer.submit(0, functools.partial(write, False))
        assert seen == [threading.current_thread().name] and not writer.failed
        writer.submit(1, functools.partial(write, True))
        assert writer.failed and len(seen) == 2  # kept, not raised: the batch stops at its next datum
        with pytest.raises(Unavailable, match="down"):
            writer.wait()


def test_leaving_on_an_error_waits_for_the_writes_and_raises_the_blocks_own() -> None:
    ended: list[int] = []

    def write(index: int) -> None:
        time.sleep(0.02)
        ended.append(index)
        raise Unavailable("the write's own outage")

    with pytest.raises(KeyError, match="the batch's own"):
        with ResultWriter[None]() as writer:
            writer.submit(0, lambda: write(0))
            raise KeyError("the batch's own")
    assert ended == [0]


# ---- batches that use it --------------------------------------------------------------------


class Outage:
    """A store whose result writes meet an outage while `down` is set."""

    down = False

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if self.down and "/results/" in key:
            raise Unavailable(f"storage unavailable writing '{key}'")
        return super().put_if_absent(key, data)  # type: ignore[misc]


class LocalOutage(Outage, LocalObjectStore):
    """A local folder: the worker stores results in the batch's own thread."""


class RemoteOutage(Outage, MemoryObjectStore):
    """Not a local folder (as S3 is not): the worker stores results on the writer's thread."""


@pytest.fixture(params=["local", "remote"])
def job(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A 3-datum job planned in either store; yields (store, plan)."""
    monkeypatch.delenv("HERD_BROKER", raising=False)
    monkeypatch.setenv("HERD_SCRATCH", str(tmp_path / "scratch"))
    objects: Outage = LocalOutage(tmp_path / "store") if request.param == "local" else RemoteOutage()
    pfs = Pfs(objects)  # type: ignore[arg-type]
    pfs.create_repo("in")
    pfs.put_files("in", "master", [(f"/f{i}", f"line {i}\n".encode()) for i in range(3)])
    Pipelines(pfs).create({
        "pipeline": {"name": "p"}, "transform": {"cmd": ["sh", "-c", "cp $in /pfs/out/"]},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
    })
    capture = LosingDispatcher()
    Scheduler(pfs, capture, batch_size=3).tick()
    (batch,) = capture.batches
    plan = PpsStore(objects).read_plan(batch.job_id)  # type: ignore[arg-type]
    assert isinstance(plan, JobPlan) and len(plan.datums) == 3
    threaded = context_for(objects, "local").remote_store  # type: ignore[arg-type]
    assert threaded == (request.param == "remote")
    yield objects, plan
    release_context(objects)  # type: ignore[arg-type]


def run(objects: Outage, plan: JobPlan, datums: tuple[int, ...]) -> BatchOutcome:
    message = DatumBatch(job_id=plan.job_id, datums=datums).model_dump()
    return BatchOutcome.model_validate(process_batch(message, objects=objects, runtime="local"))


def test_every_result_is_stored_when_the_batch_reports_it(job) -> None:
    objects, plan = job
    outcome = run(objects, plan, (0, 1, 2))
    assert outcome.done == (0, 1, 2)
    records = PpsStore(objects)
    for datum in plan.datums:
        result = records.read_result(plan.job_id, datum.id)
        assert result is not None and result.attempt == 1 and result.outputs


def test_a_datum_twice_in_one_batch_runs_once(job) -> None:
    objects, plan = job
    outcome = run(objects, plan, (1, 0, 1))
    assert outcome.done == (1, 0)
    attempts = AttemptStore(objects)
    assert [len(attempts.attempts(plan.job_id, d.id).items) for d in plan.datums[:2]] == [1, 1]


def test_an_outage_writing_the_results_gives_their_attempts_back(job) -> None:
    # Given storage that refuses every result write of the first delivery
    objects, plan = job
    objects.down = True
    # When the batch runs, it goes back to the broker naming the outage
    with pytest.raises(Unavailable, match="results"):
        run(objects, plan, (0, 1, 2))
    # Then no result was stored, and every attempt that ran is given back (no try used); the
    # batch started no datum once a write had failed
    records, attempts = PpsStore(objects), AttemptStore(objects)
    assert all(records.read_result(plan.job_id, d.id) is None for d in plan.datums)
    met = [attempts.attempts(plan.job_id, d.id) for d in plan.datums]
    assert met[0].latest is not None and met[0].latest.given_back
    assert all(a.tries_used == 0 and all(x.given_back for x in a.items) for a in met)
    # And once storage answers again the batch is delivered again and every datum succeeds
    objects.down = False
    outcome = run(objects, plan, (0, 1, 2))
    assert outcome.done == (0, 1, 2)
    for datum in plan.datums:
        result = records.read_result(plan.job_id, datum.id)
        assert result is not None and result.state == DatumState.SUCCESS
        assert attempts.attempts(plan.job_id, datum.id).tries_used == 1
