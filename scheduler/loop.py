"""The level-triggered scheduler: compare the jobs that should exist with what storage holds.

Every pass re-reads storage (pipelines, branch heads, job records) and moves each pipeline's
oldest unfinished job one step: create it with its plan, send the datums that have no result,
or finish it. Nothing is remembered that storage does not also say, apart from caches of
records that never change (finished jobs), so a restart at any moment resumes the work.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from scheduler import engine
from scheduler.batching import Durations, batch_size, room
from scheduler.dispatch import Dispatcher
from scheduler.history import Histories
from scheduler.jobs import JobState
from scheduler.messages import BatchOutcome, DatumBatch
from scheduler.plan import input_branches
from scheduler.records import JobPlan, PipelineInfo, job_id_for
from scheduler.spec import PipelineSpec, parse_spec
from scheduler.store import RecordStore
from scheduler.triggers import job_tuples
from storage import failpoints
from storage.model import CommitRef
from storage.repos import Pfs


SAMPLES_PER_PASS = 4  # results read per job and pass to measure datum times


@dataclass
class Progress:
    """What a terminal shows while jobs run."""

    pipeline: str
    job_id: str
    total: int
    done: int


class Scheduler:
    """Moves every pipeline's jobs forward; `tick` is one pass, `run_until_idle` loops."""

    def __init__(
        self, pfs: Pfs, dispatcher: Dispatcher, parallelism: int = 1, batch_size: int | None = None,
        batch_seconds: float | None = None,
    ) -> None:
        self.pfs = pfs
        self.records = RecordStore(pfs.objects)
        self.dispatcher = dispatcher
        self.parallelism = max(1, parallelism)
        self.batch_size = batch_size
        # Set (the scheduler service): messages carry ~batch_seconds of measured work each.
        self.batch_seconds = batch_seconds
        self._durations = Durations()
        self._sampled: dict[str, set[str]] = {}
        self._finished: set[str] = set()
        self._histories = Histories(pfs)
        self._seen: dict[str, set[str]] = {}  # datum ids with a stored result, per job (they never go away)
        self._listed: dict[str, float] = {}
        self._to_run: dict[str, list[int]] = {}
        self.refresh_interval = 5.0
        self._specs: dict[tuple[str, int], PipelineSpec] = {}
        self.on_progress: Callable[[Progress], None] | None = None

    def tick(self) -> bool:
        """One reconcile pass over all pipelines; True while some job is unfinished."""
        busy = False
        for pipeline in self.records.list_pipelines():
            if not pipeline.stopped and self._reconcile(pipeline):
                busy = True
        return busy

    def run_until_idle(self, timeout: float | None = None, poll: float = 0.05) -> None:
        """Tick until no job is left unfinished (the embedded default's way of running)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.tick():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("jobs still running")
            self.note(self.dispatcher.wait(poll))

    def note(self, outcomes: list[BatchOutcome]) -> None:
        """Take workers' reports as hints of which datums now have results."""
        for outcome in outcomes:
            plan = self.records.read_plan(outcome.job_id)
            seen = self._seen.get(outcome.job_id)
            if plan is None or seen is None:
                continue
            seen.update(plan.datums[i].id for i in (*outcome.done, *outcome.failed) if i < len(plan.datums))

    def owed_jobs(self, pipeline: PipelineInfo) -> list[tuple[str, tuple[CommitRef, ...]]]:
        """Every job this pipeline version owes, oldest first, as (job id, input commits)."""
        spec = self._spec(pipeline)
        keys = sorted(input_branches(spec))
        histories = {key: self._histories.finished(*key) for key in keys}
        tuples = job_tuples(keys, histories, pipeline.since)
        return [(job_id_for(pipeline.name, pipeline.version, pipeline.salt, t), t) for t in tuples]

    def _reconcile(self, pipeline: PipelineInfo) -> bool:
        for job_id, inputs in self.owed_jobs(pipeline):
            if job_id in self._finished:
                continue
            status = self.records.read_status(job_id)
            if status is not None and status.state.terminal:
                self._finished.add(job_id)
                continue
            self._advance(pipeline, job_id, inputs)
            return True
        return False

    def _advance(self, pipeline: PipelineInfo, job_id: str, inputs: tuple[CommitRef, ...]) -> None:
        spec = self._spec(pipeline)
        plan = self.records.read_plan(job_id)
        status = self.records.read_status(job_id)
        if plan is None or status is None or status.state == JobState.JOB_STARTING:
            plan = engine.create_job(self.pfs, self.records, pipeline, spec, job_id, inputs)
            status = self.records.read_status(job_id)
        if status is None or status.state.terminal:
            return
        pending = self._pending(plan)
        self._report(pipeline.name, job_id, len(plan.to_run()), len(plan.to_run()) - len(pending))
        if not pending:
            engine.finish_job(self.pfs, self.records, plan, spec)
            return
        if self._job_timed_out(spec, status):
            engine.kill_job(self.records, job_id, f"job_timeout ({spec.job_timeout}s) passed")
            return
        self._measure(plan)
        self._send(job_id, pending, spec)

    def _pending(self, plan: JobPlan) -> list[int]:
        """Datums without a result; storage is listed only when the hints may be stale."""
        job_id = plan.job_id
        to_run = self._to_run.setdefault(job_id, plan.to_run())
        seen = self._seen.get(job_id)
        if seen is not None and time.monotonic() - self._listed.get(job_id, 0.0) < self.refresh_interval:
            remaining = [i for i in to_run if plan.datums[i].id not in seen]
            in_flight = self.dispatcher.in_flight(job_id)
            if remaining and any(i in in_flight for i in remaining):
                return remaining
        # Before finishing or (re)sending, confirm from storage: it is the truth, hints are not.
        self._seen[job_id] = seen = self.records.result_ids(job_id)
        self._listed[job_id] = time.monotonic()
        return [i for i in to_run if plan.datums[i].id not in seen]

    def _send(self, job_id: str, pending: list[int], spec: PipelineSpec) -> None:
        in_flight = self.dispatcher.in_flight(job_id)
        todo = [i for i in pending if i not in in_flight]
        if not todo:
            return
        workers = self._workers(spec)
        if self.batch_seconds is None:
            size = self.batch_size or max(1, min(64, math.ceil(len(pending) / (workers * 4))))
        else:
            # Sized by measured datum times, and paced: a few batches per worker ahead.
            seconds = self._durations.get(spec.pipeline.name)
            size = self.batch_size or batch_size(len(pending), workers, seconds, self.batch_seconds)
            todo = todo[: room(len(pending) - len(todo), workers, size)]
        for start in range(0, len(todo), size):
            self.dispatcher.submit(DatumBatch(job_id=job_id, datums=tuple(todo[start : start + size])))
            failpoints.hit("scheduler.after_send")

    def _measure(self, plan: JobPlan) -> None:
        """Read the run times of a few new results (the batch size follows them)."""
        if self.batch_seconds is None:
            return
        sampled = self._sampled.setdefault(plan.job_id, set())
        fresh = [d for d in self._seen.get(plan.job_id, ()) if d not in sampled][:SAMPLES_PER_PASS]
        for datum_id in fresh:
            sampled.add(datum_id)
            result = self.records.read_result(plan.job_id, datum_id)
            if result is not None and result.started is not None and result.finished is not None:
                self._durations.add(plan.pipeline, (result.finished - result.started).total_seconds())

    def _workers(self, spec: PipelineSpec) -> int:
        par = spec.parallelism_spec
        if par is not None and getattr(par, "constant", None):
            return int(par.constant)
        if par is not None and getattr(par, "coefficient", None):
            return max(1, int(par.coefficient * self.parallelism))
        return self.parallelism

    def _job_timed_out(self, spec: PipelineSpec, status) -> bool:
        if not spec.job_timeout or status.started is None:
            return False
        return (engine.now() - status.started).total_seconds() > spec.job_timeout

    def _spec(self, pipeline: PipelineInfo) -> PipelineSpec:
        key = (pipeline.name, pipeline.version)
        if key not in self._specs:
            self._specs[key] = parse_spec(pipeline.spec)
        return self._specs[key]

    def _report(self, pipeline: str, job_id: str, total: int, done: int) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(pipeline=pipeline, job_id=job_id, total=total, done=done))
