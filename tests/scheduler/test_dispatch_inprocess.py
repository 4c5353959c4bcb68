"""The embedded dispatcher: a batch counts as running until the scheduler takes its outcome, so a
pass between a batch's end and that outcome never sends its datums again."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from scheduler.dispatch_inprocess import InProcessDispatcher
from scheduler.loop import Scheduler
from scheduler.messages import BatchOutcome, DatumBatch
from scheduler.pipelines import Pipelines
from scheduler.store import PpsStore
from storage.local import LocalObjectStore
from storage.objects import ObjectStore
from storage.repos import Pfs
from worker.context import release_context
from worker.datum import process_batch

SPEC = {
    "pipeline": {"name": "copy"},
    "transform": {"cmd": ["sh", "-c", "cp $in /pfs/out/"]},
    "input": {"pfs": {"repo": "in", "glob": "/*"}},
}


class Deliveries:
    """A run_batch that counts every datum it is handed, then runs it for real."""

    def __init__(self) -> None:
        self.count: Counter[int] = Counter()
        self.ended = threading.Semaphore(0)
        self._lock = threading.Lock()

    def __call__(self, message: dict[str, Any], objects: ObjectStore) -> dict[str, Any]:
        with self._lock:
            self.count.update(DatumBatch.model_validate(message).datums)
        try:
            return process_batch(message, objects, runtime="local")
        finally:
            self.ended.release()


def make_pfs(tmp_path: Path, files: int) -> Pfs:
    pfs = Pfs(LocalObjectStore(tmp_path / "store"))
    pfs.create_repo("in")
    pfs.put_files("in", "master", [(f"/f{i:03d}", f"{i}\n".encode()) for i in range(files)])
    Pipelines(pfs).create(dict(SPEC))
    return pfs


def test_a_batch_that_ended_stays_sent_until_its_outcome_is_taken(tmp_path: Path) -> None:
    # Given the first batches of a job sent, and every one of them ended (results stored)
    pfs = make_pfs(tmp_path, 4)
    runs = Deliveries()
    dispatcher = InProcessDispatcher(pfs.objects, 2, run_batch=runs, release=release_context)
    scheduler = Scheduler(pfs, dispatcher, parallelism=2)
    try:
        scheduler.tick()  # plans the job and sends its first batches (one datum each: unmeasured)
        (job_id,) = PpsStore(pfs.objects).job_markers("copy")
        marks = dispatcher.sent(job_id)
        assert marks
        for _ in marks:
            assert runs.ended.acquire(timeout=60)
        first = {i for mark in marks for i in mark.datums}
        assert {i for mark in dispatcher.sent(job_id) for i in mark.datums} == first  # ended, still sent

        # When a pass runs before the scheduler took their outcomes
        scheduler.tick()

        # Then none of them is sent again; taking the outcomes ends them
        assert all(runs.count[i] == 1 for i in first), runs.count
        dispatcher.wait(5.0)
        assert not any(set(mark.datums) & first for mark in dispatcher.sent(job_id))
    finally:
        dispatcher.close()


def test_every_datum_of_an_embedded_run_is_delivered_once(tmp_path: Path) -> None:
    # Given a job of 40 datums on two threads, batches ending while passes run
    pfs = make_pfs(tmp_path, 40)
    runs = Deliveries()
    dispatcher = InProcessDispatcher(pfs.objects, 2, run_batch=runs, release=release_context)
    try:
        # When it runs to the end
        Scheduler(pfs, dispatcher, parallelism=2).run_until_idle(timeout=120)
    finally:
        dispatcher.close()
    # Then each datum was handed to a worker thread exactly once, and the output is whole
    assert sorted(runs.count) == list(range(40))
    assert set(runs.count.values()) == {1}, runs.count
    assert len(pfs.list_file("copy", "master", "/")) == 40


def test_an_outcome_that_raised_ends_its_batch_too(tmp_path: Path) -> None:
    # Given a batch whose run raised
    pfs = make_pfs(tmp_path, 1)

    def broken(message: dict[str, Any], objects: ObjectStore) -> dict[str, Any]:
        raise RuntimeError("worker fell over")

    dispatcher = InProcessDispatcher(pfs.objects, 1, run_batch=broken, release=release_context)
    try:
        dispatcher.submit(DatumBatch(job_id="j" * 32, datums=(0,)))
        # When the scheduler takes the outcome: the error reaches it
        try:
            while not dispatcher.wait(5.0):
                pass
            raise AssertionError("the batch's error did not reach wait()")
        except RuntimeError as exc:
            assert "worker fell over" in str(exc)
        # Then the batch no longer counts as sent
        assert dispatcher.sent("j" * 32) == []
    finally:
        dispatcher.close()


def test_outcomes_come_back_as_reported(tmp_path: Path) -> None:
    pfs = make_pfs(tmp_path, 1)

    def done(message: dict[str, Any], objects: ObjectStore) -> dict[str, Any]:
        batch = DatumBatch.model_validate(message)
        return BatchOutcome(job_id=batch.job_id, done=batch.datums, seconds=(0.01,)).model_dump()

    dispatcher = InProcessDispatcher(pfs.objects, 1, run_batch=done, release=release_context)
    try:
        dispatcher.submit(DatumBatch(job_id="j" * 32, datums=(0, 1)))
        outcomes: list[BatchOutcome] = []
        while not outcomes:
            outcomes = dispatcher.wait(5.0)
        assert outcomes == [BatchOutcome(job_id="j" * 32, done=(0, 1), seconds=(0.01,))]
        assert dispatcher.sent("j" * 32) == []
    finally:
        dispatcher.close()


def test_the_embedded_loop_never_waits_out_its_idle_poll(tmp_path: Path) -> None:
    # Given a chain of two pipelines over 6 files, and a loop whose idle wait is a minute
    pfs = make_pfs(tmp_path, 6)
    Pipelines(pfs).create({
        "pipeline": {"name": "count"},
        "transform": {"cmd": ["sh", "-c", "wc -c < $copy > /pfs/out/$(basename $copy)"]},
        "input": {"pfs": {"repo": "copy", "glob": "/*"}},
    })
    dispatcher = InProcessDispatcher(pfs.objects, 2, run_batch=Deliveries(), release=release_context)
    started = time.monotonic()
    try:
        # When it runs both jobs to the end
        Scheduler(pfs, dispatcher, parallelism=2).run_until_idle(timeout=300, idle_poll=60)
    finally:
        dispatcher.close()
    # Then every wait ended with a batch's outcome or after a step that moved a job on: no pass
    # waited for its idle poll (a new job, a finished one, the downstream job start at once)
    assert time.monotonic() - started < 30
    assert len(pfs.list_file("count", "master", "/")) == 6


class CountedPasses(Scheduler):
    """A Scheduler that counts its passes that reuse the last full pass's owed jobs."""

    light = 0

    def tick(self, again: bool = False) -> bool:
        if again and self._owed is not None:
            self.light += 1
        return super().tick(again)


def test_outcomes_wake_passes_that_reuse_what_the_last_full_pass_found(tmp_path: Path) -> None:
    # Given a job of 60 datums sent one per batch, and the scheduler's pipeline listings counted
    pfs = make_pfs(tmp_path, 60)
    dispatcher = InProcessDispatcher(pfs.objects, 2, run_batch=Deliveries(), release=release_context)
    scheduler = CountedPasses(pfs, dispatcher, parallelism=2, batch_size=1)
    listings = []
    real_list = scheduler.records.list_pipelines

    def counted() -> Any:
        listings.append(1)
        return real_list()

    scheduler.records.list_pipelines = counted  # type: ignore[method-assign]
    try:
        # When it runs to the end, with a full look at least every minute
        scheduler.run_until_idle(timeout=300, idle_poll=60)
    finally:
        dispatcher.close()
    # Then most passes woken by an outcome listed nothing, and the output is whole
    assert scheduler.light >= 20 and len(listings) < scheduler.light, (scheduler.light, len(listings))
    assert len(pfs.list_file("copy", "master", "/")) == 60


def test_a_commit_made_while_outcomes_wake_the_loop_still_gets_its_job(tmp_path: Path) -> None:
    # Given a job whose first datum's run puts a new file in the input repo
    pfs = make_pfs(tmp_path, 30)
    runs = Deliveries()
    added, first = threading.Event(), threading.Lock()

    def run_batch(message: dict[str, Any], objects: ObjectStore) -> dict[str, Any]:
        if first.acquire(blocking=False):  # once, whichever thread comes first (put-file appends)
            pfs.put_file("in", "master", "/late", b"late\n")
            added.set()
        return runs(message, objects)

    dispatcher = InProcessDispatcher(pfs.objects, 2, run_batch=run_batch, release=release_context)
    scheduler = CountedPasses(pfs, dispatcher, parallelism=2, batch_size=1)
    try:
        # When the loop runs until idle (its passes between outcomes reuse the owed jobs)
        scheduler.run_until_idle(timeout=300, idle_poll=60)
    finally:
        dispatcher.close()
    # Then the commit's job ran too before it returned: the output holds the late file
    assert added.is_set() and scheduler.light > 0
    assert {info.path for info in pfs.list_file("copy", "master", "/")} >= {"/late", "/f000", "/f029"}
    assert pfs.inspect_file("copy", "master", "/late").size == 5
