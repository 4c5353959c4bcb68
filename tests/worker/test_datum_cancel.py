"""restart-datum and stop-job take effect on a datum a worker is running: its heartbeat sees them
and kills the user code. Real parts: the local runtime's sandbox, a local store, `process_batch`
on a thread as the embedded dispatcher runs it, and the CLI's own `Pipelines` calls."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.loop import Scheduler
from scheduler.messages import BatchOutcome, DatumBatch
from scheduler.pipelines import Pipelines
from scheduler.store import PpsStore
from storage.local import LocalObjectStore
from storage.repos import Pfs
from tests.fakes import LosingDispatcher
from tests.worker.processes import processes_running, unique_sleep, wait_until
from worker.context import release_context
from worker.datum import process_batch


class Running:
    """A one-datum job whose user code sleeps; `process_batch` runs it on a thread."""

    def __init__(self, root: Path, token: str, tries: int) -> None:
        self.pfs = Pfs(LocalObjectStore(root / "store"))
        self.pfs.create_repo("in")
        self.pfs.put_files("in", "master", [("/x", b"x\n")])
        Pipelines(self.pfs).create({
            "pipeline": {"name": "hang"}, "datum_tries": tries,
            "transform": {"cmd": ["sh", "-c", f"sleep {token}"]},
            "input": {"pfs": {"repo": "in", "glob": "/*"}},
        })
        sent = LosingDispatcher()
        Scheduler(self.pfs, sent).tick()
        (self.batch,) = sent.batches
        self.job_id = self.batch.job_id
        self.records = PpsStore(self.pfs.objects)
        self.datum_id = self.records.read_plan(self.job_id).datums[0].id
        self.outcome: BatchOutcome | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            raw = process_batch(self.batch.model_dump(), objects=self.pfs.objects, runtime="local")
            self.outcome = BatchOutcome.model_validate(raw)
        except BaseException as exc:  # noqa: BLE001 - the test thread reports it
            self.error = exc

    def attempt_numbers(self) -> list[int]:
        return [a.number for a in self.records.attempts(self.job_id, self.datum_id)]


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[callable]:
    monkeypatch.delenv("HERD_BROKER", raising=False)
    monkeypatch.setenv("HERD_LEASE_SECONDS", "1.5")  # a heartbeat every 0.5 s
    monkeypatch.setenv("HERD_SCRATCH", str(tmp_path / "scratch"))
    made: list[Running] = []

    def make(token: str, tries: int = 1) -> Running:
        made.append(Running(tmp_path, token, tries))
        return made[-1]

    yield make
    for job in made:
        release_context(job.pfs.objects)


def test_restart_datum_kills_the_running_attempt_and_runs_it_again_without_using_a_try(running) -> None:
    # Given a datum (datum_tries 1) whose user code is running in attempt 1
    token = unique_sleep(3600)
    job = running(token, tries=1)
    wait_until(lambda: len(processes_running(token)) == 1, timeout=30)
    (first,) = processes_running(token)

    # When restart-datum is called, as the CLI does
    Pipelines(job.pfs).restart_datum(job.job_id, job.datum_id[:12])

    # Then attempt 1's user code is killed and attempt 2 runs, though datum_tries is 1
    wait_until(lambda: processes_running(token) not in ([], [first]), timeout=15)
    assert job.attempt_numbers() == [1, 2]
    (attempt1, attempt2) = job.records.attempts(job.job_id, job.datum_id)
    assert attempt1.restarted and not attempt1.counts and attempt2.counts

    # And a heartbeat never erases the restart (the marker is its own key)
    wait_until(lambda: job.records.attempts(job.job_id, job.datum_id)[0].restarted, timeout=3)

    # When the job is stopped: Then attempt 2's user code is killed and the batch ends with no result
    Pipelines(job.pfs).stop_job(job.job_id)
    job.thread.join(timeout=15)
    assert not job.thread.is_alive() and job.error is None
    assert processes_running(token) == []
    assert job.records.read_result(job.job_id, job.datum_id) is None
    assert job.outcome is not None and job.outcome.done == () and job.outcome.failed == ()


def test_stop_job_ends_a_datum_that_hangs_with_no_datum_timeout(running) -> None:
    # Given user code hanging with no datum_timeout
    token = unique_sleep(3600)
    job = running(token, tries=3)
    wait_until(lambda: len(processes_running(token)) == 1, timeout=30)

    # When the job is stopped
    Pipelines(job.pfs).stop_job(job.job_id)

    # Then the worker kills it within a few heartbeats, stores nothing and takes no other try
    job.thread.join(timeout=15)
    assert not job.thread.is_alive() and job.error is None
    assert processes_running(token) == []
    assert job.attempt_numbers() == [1]
    assert job.records.read_result(job.job_id, job.datum_id) is None
