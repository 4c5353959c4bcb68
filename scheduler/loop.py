"""The level-triggered scheduler: observe -> decide -> apply, for each pipeline's oldest unfinished job.

Every pass re-reads storage (pipelines, branch heads, job records) and the broker's marks into
a frozen `JobView`; `reconcile.decide` (pure) says what to do; `_apply` does it. Nothing is
remembered that storage does not also say, apart from hints (results reported by workers, the
datums they gave back, measured datum times) and caches of records that never change, so a
restart at any moment observes again and resumes the work.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from scheduler import lifecycle, metrics
from scheduler.attempts import AttemptStore
from scheduler.batching import Durations
from scheduler.dispatch import Dispatcher
from scheduler.history import Histories
from scheduler.job_records import JobState, JobStatus
from scheduler.messages import BatchOutcome, DatumBatch
from scheduler.plan import input_branches
from scheduler.reconcile import (
    Action, CreateJob, EgressOutput, FailDatum, FinishJob, Forget, JobView, KillJob, Refresh, Resend, Send, Watch, decide,
    to_check,
)
from scheduler.records import JobPlan, PipelineInfo
from scheduler.spec import PipelineSpec, parse_spec
from scheduler.store import PpsStore
from scheduler.triggers import owed_jobs
from storage import failpoints
from storage.model import CommitRef
from storage.repos import Pfs
from storage.settings import StorageSettings


# States whose next step needs no datum bookkeeping: creating the job, copying its output out.
_UNPLANNED = (JobState.JOB_STARTING, JobState.JOB_EGRESSING)


@dataclass
class Progress:
    """What a terminal shows while jobs run."""

    pipeline: str
    job_id: str
    total: int
    done: int


@dataclass
class _Hints:
    """What workers reported about one job since storage was last listed: hints, not the truth."""

    to_run: list[int]
    seen: set[str] = field(default_factory=set)  # datum ids with a stored result (they never go away)
    listed: float | None = None  # monotonic time of the last listing
    returned: set[int] = field(default_factory=set)  # came back without a result


# The jobs a pipeline owes, oldest first: (job id, input commits).
Owed = list[tuple[str, tuple[CommitRef, ...]]]

# Seconds a pass woken by outcomes may take the pipelines as the last full pass found them.
IDLE_POLL = 0.5

# Actions after which nothing is due before a batch's outcome (or a mark grows old).
_WAITING = (Send, Resend, Forget, Watch)


class Scheduler:
    """Moves every pipeline's jobs forward; `tick` is one pass, `run_until_idle` loops."""

    def __init__(
        self, pfs: Pfs, dispatcher: Dispatcher, parallelism: int = 1, batch_size: int | None = None,
        batch_seconds: float = 1.0, resend_seconds: float = 20.0, storage_settings: StorageSettings | None = None,
    ) -> None:
        self.pfs = pfs
        self.records = PpsStore(pfs.objects)
        self.attempts = AttemptStore(pfs.objects)
        self.dispatcher = dispatcher
        self.parallelism = max(1, parallelism)
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds  # messages carry about this much measured work each
        self.resend_seconds = resend_seconds
        self.storage_settings = storage_settings  # egress opens s3:// URLs with the same S3 settings
        self._durations = Durations()
        self._finished: set[str] = set()
        self._states: dict[str, tuple[str, str]] = {}  # job id -> (pipeline, state) as last read: metrics only
        self._histories = Histories(pfs)
        self._hints: dict[str, _Hints] = {}
        self._specs: dict[tuple[str, int], PipelineSpec] = {}
        self._moved = False  # the last pass moved a job on (see run_until_idle)
        self._owed: list[tuple[PipelineInfo, Owed]] | None = None
        self.on_progress: Callable[[Progress], None] | None = None

    def tick(self, again: bool = False) -> bool:
        """One reconcile pass over all pipelines; True while some job is unfinished.

        again=True: the pipelines and the jobs each owes are taken as the last pass found them
        (no listing, no branch read), and only their jobs are read and stepped. A pass that
        finds no unfinished job that way looks again in full before answering."""
        self._moved = False
        busy = False
        found: list[tuple[PipelineInfo, Owed]] = []
        kept = self._owed if again else None
        passes: Iterable[tuple[PipelineInfo, Owed | None]] = (
            kept if kept is not None else ((p, None) for p in self.records.list_pipelines() if not p.stopped)
        )
        for pipeline, owed in passes:
            # Computed as each pipeline comes up, after the ones before it were stepped: a job
            # an upstream pipeline finished in this pass is owed downstream in this pass too.
            owed = self.owed_jobs(pipeline) if owed is None else owed
            found.append((pipeline, owed))
            if self._reconcile(pipeline, owed):
                busy = True
        self._owed = found
        metrics.jobs(self._states.values())
        if kept is not None and not busy:
            return self.tick()
        return busy

    @property
    def moved(self) -> bool:
        """Whether the last pass moved a job on (made, finished, failed one)."""
        return self._moved

    def run_until_idle(self, timeout: float | None = None, poll: float = 0.05, idle_poll: float = IDLE_POLL) -> None:
        """Tick until no job is left unfinished (the embedded default's way of running).

        After a pass that only sent batches (or did nothing), what changes next comes with a
        batch's outcome, which ends the wait at once: the next pass waits for one up to
        `idle_poll`. After a pass that moved a job on (made, finished, failed one), the next
        step may be due at once (a downstream job, the next job of the pipeline): `poll`. On S3
        a pass costs several requests, so passes every `poll` while batches run took a sixth
        of a trivial job's requests."""
        deadline = None if timeout is None else time.monotonic() + timeout
        again, looked = False, time.monotonic()
        while self.tick(again):
            if not again:
                looked = time.monotonic()
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("jobs still running")
            outcomes = self.dispatcher.wait(poll if self._moved else idle_poll)
            self.note(outcomes)
            # Woken by outcomes, with no job moved on since: the pipelines and what they owe
            # are still as the last full pass found them, unless `idle_poll` has passed since
            # (a new commit, a stopped pipeline). A full pass costs a listing and the reads of
            # every input branch: on S3, one per outcome was about 60 of the 1,250 requests of
            # 500 trivial datums.
            again = bool(outcomes) and not self._moved and time.monotonic() - looked < idle_poll

    def note(self, outcomes: list[BatchOutcome]) -> None:
        """Take workers' reports as hints: which datums have results, which came back without."""
        for outcome in outcomes:
            hints = self._hints.get(outcome.job_id)
            plan = self.records.read_plan(outcome.job_id)
            if hints is None or plan is None:
                continue
            size = len(plan.datums)
            hints.seen.update(plan.datums[i].id for i in (*outcome.done, *outcome.failed) if i < size)
            hints.returned.update(i for i in (*outcome.deferred, *outcome.used_up) if i < size)
            for seconds in outcome.seconds:
                self._durations.add(plan.pipeline, seconds)

    def pipeline_of(self, job_id: str) -> str | None:
        """The pipeline of a job this scheduler has looked at (labels only: Flower, metrics)."""
        seen = self._states.get(job_id)
        return None if seen is None else seen[0]

    def owed_jobs(self, pipeline: PipelineInfo) -> Owed:
        """Every job this pipeline version owes, oldest first, as (job id, input commits)."""
        spec = self._spec(pipeline)
        keys = sorted(input_branches(spec))
        histories = {key: self._histories.finished(*key) for key in keys}
        return owed_jobs(pipeline, keys, histories)

    def _reconcile(self, pipeline: PipelineInfo, owed: Owed) -> bool:
        for job_id, inputs in owed:
            if job_id in self._finished:
                continue
            status = self.records.read_status(job_id)
            self._states[job_id] = (pipeline.name, (status.state if status else JobState.JOB_STARTING).value)
            if status is not None and status.state.terminal:
                self._finished.add(job_id)
                self._hints.pop(job_id, None)
                continue
            self.step(pipeline, job_id, inputs, status)
            return True
        return False

    # observe -> decide -> apply ----------------------------------------------------------
    def step(
        self, pipeline: PipelineInfo, job_id: str, inputs: tuple[CommitRef, ...], status: JobStatus | None = None,
    ) -> list[Action]:
        """Observe-decide-apply for a job; returns the actions applied.

        Two actions look again at once rather than a pass later: `Refresh` (list results from
        storage, then decide) and `CreateJob` (the new job's first batches go out in this pass)."""
        spec = self._spec(pipeline)
        view, plan = self.observe(pipeline, spec, job_id, list_results=False, status=status)
        actions = decide(view)
        if actions == [CreateJob()]:
            self._moved = True
            self._apply(actions, pipeline, spec, job_id, inputs, plan)
            view, plan = self.observe(pipeline, spec, job_id, list_results=False)
            actions = [a for a in decide(view) if not isinstance(a, CreateJob)]
        if actions == [Refresh()]:
            view, plan = self.observe(pipeline, spec, job_id, list_results=True)
            actions = [a for a in decide(view) if not isinstance(a, Refresh)]
        self._apply(actions, pipeline, spec, job_id, inputs, plan)
        if any(not isinstance(a, _WAITING) for a in actions):
            self._moved = True
        return actions

    def observe(
        self, pipeline: PipelineInfo, spec: PipelineSpec, job_id: str, list_results: bool,
        status: JobStatus | None = None,
    ) -> tuple[JobView, JobPlan | None]:
        """Read the job from storage and the broker into a view (results listed when asked or unknown)."""
        plan = self.records.read_plan(job_id)
        if status is None:  # not read by the caller this pass
            status = self.records.read_status(job_id)
        if plan is None or status is None or status.state in _UNPLANNED or status.state.terminal:
            state = None if status is None else status.state
            return JobView(job_id=job_id, state=state, planned=plan is not None, now=time.time()), plan
        hints = self._hints.setdefault(job_id, _Hints(to_run=plan.to_run()))
        listed_now = list_results or hints.listed is None
        if listed_now:
            hints.seen = self.records.result_ids(job_id)
            hints.listed = time.monotonic()
        results = frozenset(i for i in hints.to_run if plan.datums[i].id in hints.seen)
        hints.returned -= results
        self._report(pipeline.name, job_id, len(hints.to_run), len(results))
        marks = tuple(self.dispatcher.sent(job_id))
        now = self.dispatcher.now()
        old = any(not m.watch and now - m.at >= self.resend_seconds for m in marks)
        view = JobView(
            job_id=job_id, state=status.state, planned=True, now=now, to_run=tuple(hints.to_run), results=results,
            results_age=0.0 if listed_now else time.monotonic() - (hints.listed or 0.0), marks=marks,
            queue_waiting=old and self.dispatcher.queue_size() > 0, returned=frozenset(hints.returned),
            started=None if status.started is None else status.started.timestamp(), job_timeout=spec.job_timeout,
            datum_tries=spec.datum_tries, stopped=pipeline.stopped, resend_seconds=self.resend_seconds,
            workers=self._workers(spec), datum_seconds=self._durations.get(pipeline.name),
            batch_seconds=self.batch_seconds, batch_size=self.batch_size,
        )
        check = to_check(view)
        if check:
            attempts = {i: self.attempts.attempts(job_id, plan.datums[i].id) for i in sorted(check)}
            view = dataclasses.replace(view, attempts=attempts)
        return view, plan

    def _apply(
        self, actions: list[Action], pipeline: PipelineInfo, spec: PipelineSpec, job_id: str,
        inputs: tuple[CommitRef, ...], plan: JobPlan | None,
    ) -> None:
        hints = self._hints.get(job_id)
        for action in actions:
            if isinstance(action, CreateJob):
                lifecycle.create_job(self.pfs, self.records, pipeline, spec, job_id, inputs)
                return  # observed afresh next pass
            if isinstance(action, EgressOutput):
                lifecycle.egress_job(self.pfs, self.records, job_id, spec, self._egress_endpoint())
                self._hints.pop(job_id, None)
                return
            assert plan is not None and hints is not None  # every other action follows an observed plan
            if isinstance(action, FinishJob):
                lifecycle.finish_job(self.pfs, self.records, plan, spec)
                self._hints.pop(job_id, None)
                metrics.datums_skipped(plan.pipeline, sum(1 for d in plan.datums if d.skip))
            elif isinstance(action, KillJob):
                lifecycle.kill_job(self.records, job_id, action.reason)
            elif isinstance(action, Forget):
                self.dispatcher.forget(job_id, action.keys)
            elif isinstance(action, Watch):
                self.dispatcher.watch(job_id, action.datums)
                hints.returned.difference_update(action.datums)
            elif isinstance(action, FailDatum):
                if lifecycle.fail_datum(self.records, plan, action.datum, action.reason):
                    hints.seen.add(plan.datums[action.datum].id)
                    metrics.datum_failed(plan.pipeline)
                hints.returned.discard(action.datum)
            elif isinstance(action, (Send, Resend)):
                self.dispatcher.submit(DatumBatch(job_id=job_id, datums=action.datums))
                hints.returned.difference_update(action.datums)
                failpoints.hit("scheduler.after_send")

    def _egress_endpoint(self) -> str | None:
        """The S3 endpoint for s3:// egress URLs: HERD_S3_ENDPOINT_URL, else the store's own (if on S3)."""
        if self.storage_settings is not None and self.storage_settings.s3_endpoint_url:
            return str(self.storage_settings.s3_endpoint_url)
        endpoint = getattr(self.pfs.objects, "endpoint", None)
        return endpoint if isinstance(endpoint, str) else None

    def _workers(self, spec: PipelineSpec) -> int:
        par = spec.parallelism_spec
        if par is not None and getattr(par, "constant", None):
            return int(par.constant)
        if par is not None and getattr(par, "coefficient", None):
            return max(1, int(par.coefficient * self.parallelism))
        return self.parallelism

    def _spec(self, pipeline: PipelineInfo) -> PipelineSpec:
        key = (pipeline.name, pipeline.version)
        if key not in self._specs:
            self._specs[key] = parse_spec(pipeline.spec)
        return self._specs[key]

    def _report(self, pipeline: str, job_id: str, total: int, done: int) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(pipeline=pipeline, job_id=job_id, total=total, done=done))
