"""Process a batch of datums: claim an attempt, stage /pfs, run user code, store the outcome.

The same function runs in Celery workers and in the embedded in-process dispatcher. Every
step is safe to repeat: a datum that already has a result is skipped, attempts are counted in
storage (so a datum that kills its worker cannot loop forever), outputs go to content-addressed
blobs, and the first create-only result record wins. The contract with the scheduler (claims,
leases, markers, what counts as a try) is scheduler/attempts.py.

Only user code failing (non-zero exit, timeout, out of memory, unsafe output) uses a try. An
outage (storage, broker, Docker engine) gives the attempt back and raises, so the batch goes
back to the broker; a datum that keeps meeting one for HERD_OUTAGE_SECONDS fails naming it.

The worker decides which try is the last (its claim counts the tries used): when user code
fails it, transform.err_cmd runs right there, over the same staged inputs (see `_recover`).
A datum whose tries were used up by dying workers is failed by the scheduler without err_cmd.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, TypedDict

from scheduler.attempts import Attempt
from scheduler.job_records import DatumResult, DatumState, JobStats, inline_text
from scheduler.messages import BatchOutcome, DatumBatch
from scheduler.records import JobPlan, PlannedDatum
from scheduler.spec import PipelineSpec
from scheduler.store import now
from storage.errors import HerdError, Unavailable
from storage.model import FileEntry
from storage.objects import ObjectStore
from storage.prefetch import PrefetchedChunks, packed_slices
from worker import metrics
from worker.context import Lease, WorkerContext, context_for
from worker.log_shipper import LogLimits, LogShipper
from worker.outputs import collect_datum_outputs, collect_output_files
from worker.process_io import RunCancelled
from worker.result_writer import ResultWriter
from worker.runtime import RunRequest, RunResult, Session
from worker.secrets import secret_env
from worker.settings import WorkerSettings
from worker.staging import ChunkSource, clear_pfs, read_datum, stage_datum


class Claim(Enum):
    """Why no attempt was claimed."""

    HELD = "another worker's live lease holds the latest attempt"
    USED_UP = "datum_tries used up"
    ENDED = "the job ended (stop-job, job_timeout): the datum is not run"


@dataclass(frozen=True)
class Claimed:
    attempt: Attempt
    try_number: int  # tries counted against datum_tries, this one included


def process_batch(
    message: dict[str, Any], objects: ObjectStore, runtime: str | None = None, settings: WorkerSettings | None = None,
) -> dict[str, Any]:
    """Task `herd.process_batch`: run the datums of a batch; returns a BatchOutcome as a dict.

    `settings` are the entry point's (the first batch of a store opens its context with them).
    Raises `Unavailable` when an outage stops it: the batch is given back, no try is used."""
    batch = DatumBatch.model_validate(message)
    ctx = context_for(objects, runtime, settings=settings)
    plan = ctx.ledger.read_plan(batch.job_id)
    if plan is None or ctx.ledger.job_ended(batch.job_id):
        return BatchOutcome(job_id=batch.job_id).model_dump()
    spec = ctx.spec(plan)
    _warm_up(ctx, plan, spec)
    chunks = PrefetchedChunks(ctx.blobs, packed_slices(
        entry for index in batch.datums if 0 <= index < len(plan.datums)
        for item in plan.datums[index].inputs if not item.empty_files for entry in item.files.values()
    ))
    states: dict[int, DatumState | Claim] = {}
    seconds: list[float] = []
    with ResultWriter[DatumState](threaded=ctx.remote_store) as writer:
        for index in dict.fromkeys(batch.datums):  # once each: a result being stored is not yet seen
            if writer.failed:
                break  # a result met an outage: wait() raises it, and the batch goes back
            started = time.monotonic()
            state = run_datum(ctx, plan, spec, index, writer, chunks)
            if state is Claim.ENDED:
                break
            if state in (DatumState.SUCCESS, DatumState.FAILED, DatumState.RECOVERED):
                seconds.append(time.monotonic() - started)
            states[index] = state
        states.update(writer.wait())  # the state that stands: another delivery's, if it stored first
    sorted_: dict[str, list[int]] = {"done": [], "failed": [], "deferred": [], "used_up": []}
    for index, state in states.items():
        key = {DatumState.SUCCESS: "done", DatumState.RECOVERED: "done", DatumState.FAILED: "failed",
               Claim.USED_UP: "used_up"}.get(state, "deferred")
        sorted_[key].append(index)
    return BatchOutcome(
        job_id=batch.job_id, seconds=tuple(seconds), **{k: tuple(v) for k, v in sorted_.items()}
    ).model_dump()


def _warm_up(ctx: WorkerContext, plan: JobPlan, spec: PipelineSpec) -> None:
    """Open the pipeline's session before the first datum is timed: the measured datum seconds
    size later batches, and a container's or sandbox's start is not a datum's run time."""
    try:
        ctx.session(plan, spec)
    except (HerdError, RunCancelled):
        pass  # the datum meets it again, and its attempt records it (or gives it back)


def run_datum(
    ctx: WorkerContext, plan: JobPlan, spec: PipelineSpec, index: int, writer: ResultWriter[DatumState],
    chunks: ChunkSource | None = None,
) -> DatumState | Claim:
    """Run one datum to a result handed to `writer`, retrying up to datum_tries; else why not.
    The state returned is the result's own (`writer.wait()` gives the one that stands). `chunks`:
    where its input chunks are read (its batch's, read ahead), else the context's blob store."""
    datum = plan.datums[index]
    while True:
        claim = _claim(ctx, plan.job_id, datum.id, spec.datum_tries)
        if isinstance(claim, DatumResult):
            return claim.state  # another delivery already finished it
        if isinstance(claim, Claim):
            return claim  # held elsewhere (no try is burnt here), or no try left (the scheduler fails it)
        last = claim.try_number >= spec.datum_tries  # who decides "the last try": err_cmd runs after it
        try:
            result = _attempt(ctx, plan, spec, datum, claim.attempt, last, chunks)
            if result is not None and (result.state != DatumState.FAILED or last):
                writer.submit(index, functools.partial(_store_or_give_back, ctx, plan, datum, claim.attempt, result))
                return result.state
        except Unavailable as exc:
            return _outage(ctx, plan, datum, claim.attempt, exc)
        if result is None and ctx.ledger.job_ended(plan.job_id):
            return Claim.ENDED
        # Else restart-datum ended the attempt (a new one uses no try of the old), or a try is left.


def _claim(ctx: WorkerContext, job_id: str, datum_id: str, tries: int) -> Claimed | Claim | DatumResult:
    """The next attempt (create-only), else why not: done, held by a live lease, no tries left."""
    ledger = ctx.ledger
    attempt = Attempt(
        job_id=job_id, datum_id=datum_id, number=1, worker=ctx.settings.worker_id, holder=ctx.holder,
        lease_until=ctx.clock() + ctx.settings.lease_seconds,
    )
    if ledger.claim(attempt):
        return Claimed(attempt, 1)  # the usual case: one write; no result exists before a first attempt
    existing = ledger.read_result(job_id, datum_id)
    if existing is not None:
        return existing
    if ledger.job_ended(job_id):
        return Claim.ENDED
    attempts = ledger.attempts(job_id, datum_id)
    latest = attempts.latest
    if latest is not None and latest.holder != ctx.holder and latest.live(ctx.clock()):
        return Claim.HELD  # this process's own finished attempt keeps its lease a while: not a holder
    if attempts.tries_used >= tries:
        return Claim.USED_UP
    attempt = dataclasses.replace(attempt, number=attempts.next_number)
    if not ledger.claim(attempt):
        return Claim.HELD  # another process took this number just now
    return Claimed(attempt, attempts.tries_used + 1)


class _Stats(TypedDict):
    """One attempt's JobStats fields, filled in as it runs."""

    download_time: float
    process_time: float
    upload_time: float
    download_bytes: int
    upload_bytes: int


def _attempt(
    ctx: WorkerContext, plan: JobPlan, spec: PipelineSpec, datum: PlannedDatum, attempt: Attempt, last: bool = False,
    chunks: ChunkSource | None = None,
) -> DatumResult | None:
    """One run of user code; None when it was cancelled (restart-datum, stop-job): nothing is judged.
    `last`: no try is left after this one, so a failure runs transform.err_cmd (if set)."""
    started = now()
    pfs_dir = ctx.pfs_dir()
    stats: _Stats = {
        "download_time": 0.0, "process_time": 0.0, "upload_time": 0.0, "download_bytes": 0, "upload_bytes": 0,
    }
    run: RunResult | None = None
    reuse = False  # set where user code has ended for sure: its folder may then serve another datum
    shipper = _shipper(ctx, plan, datum, attempt)
    lease = ctx.leases.hold(attempt)
    try:
        session: Session = ctx.session(plan, spec)
        t0 = time.monotonic()
        source = ctx.blobs if chunks is None else chunks
        limit: int | None = getattr(session, "inputs_in_memory", None)
        inputs = None if limit is None else read_datum(source, datum.inputs, limit)
        if inputs is None:
            stats["download_bytes"] = stage_datum(source, datum.inputs, pfs_dir)
        else:
            stats["download_bytes"] = sum(len(body) for _, body in inputs if body is not None)
            (pfs_dir / "out").mkdir(exist_ok=True)
        t1 = time.monotonic()
        request = ctx.request(plan, spec, datum, pfs_dir)
        request = dataclasses.replace(request, env={**request.env, **_secrets(ctx, spec)}, inputs=inputs)
        lease.on_cancel(session.close)
        run = session.run(dataclasses.replace(request, sink=shipper))
        shipper.catch_up("stdout", run.stdout)  # what the runtime added or had not read yet
        shipper.catch_up("stderr", run.stderr)
        shipper.close()  # every line is stored before the result: get-logs -f ends with them
        if lease.cancelled:
            ctx.drop_session(plan)
            return None
        t2 = time.monotonic()
        stats["download_time"], stats["process_time"] = t1 - t0, t2 - t1
        failure = _user_code_failure(spec, run)
        if failure is not None:
            code, reason = failure
            if last and spec.transform.err_cmd:
                return _recover(ctx, plan, spec, datum, attempt, (started, run, stats), request, lease, failure,
                                shipper.segments_used)
            reuse = True
            return _finish(ctx, plan, datum, attempt, started, run, stats, reason, error=code)
        quota = ctx.settings.output_quota
        collected = (collect_datum_outputs(ctx.blobs, pfs_dir / "out", quota) if run.outputs is None
                     else collect_output_files(ctx.blobs, run.outputs, quota))
        stats["upload_time"] = time.monotonic() - t2
        stats["upload_bytes"] = collected.manifest.size
        reuse = True
        return _finish(ctx, plan, datum, attempt, started, run, stats, "", outputs=collected.manifest.files,
                       inline=collected.inline)
    except RunCancelled:
        if lease.cancelled:
            ctx.drop_session(plan)
            return None
        raise  # the worker is stopping: no result; the datum runs again later
    except Unavailable:
        raise
    except HerdError as exc:
        if lease.cancelled:
            ctx.drop_session(plan)
            return None
        return _finish(ctx, plan, datum, attempt, started, run, stats, str(exc), error=exc.code)
    finally:
        shipper.close()
        ctx.leases.release(lease)
        ctx.discard(pfs_dir, reuse)


class _Shipper(LogShipper):
    """A LogShipper that knows the segment numbers it used, so err_cmd's logs follow them."""

    segments_used = 0


def _shipper(ctx: WorkerContext, plan: JobPlan, datum: PlannedDatum, attempt: Attempt, first: int = 0) -> _Shipper:
    """The live logs of one attempt: segments of its own, so a retry never rewrites them.
    `first`: the first segment number (err_cmd's logs come after the user code's, same attempt)."""
    ledger, number, settings = ctx.ledger, attempt.number, ctx.settings

    def store(seq: int, data: bytes) -> bool:
        shipper.segments_used = max(shipper.segments_used, first + seq + 1)
        return ledger.put_log_segment(plan.job_id, datum.id, number, first + seq, data)

    limits = LogLimits(settings.log_flush_seconds, settings.log_head_bytes, settings.log_tail_bytes)
    shipper = _Shipper(store, settings.worker_id, number, limits)
    shipper.segments_used = first
    return shipper


def _secrets(ctx: WorkerContext, spec: PipelineSpec) -> dict[str, str]:
    """The env_var secrets of the transform (SecretNotFound names one the worker lacks)."""
    return secret_env(spec.transform.secrets, ctx.settings.secrets_dir) if spec.transform.secrets else {}


def _recover(
    ctx: WorkerContext, plan: JobPlan, spec: PipelineSpec, datum: PlannedDatum, attempt: Attempt,
    so_far: tuple[datetime, RunResult, _Stats], request: RunRequest, lease: Lease, failure: tuple[str, str],
    first_segment: int,
) -> DatumResult | None:
    """Pachyderm's err_cmd: run after the last failed try, in the same runtime over the same
    /pfs inputs, with a fresh empty /pfs/out whose contents are discarded. Exit 0 (or an
    accept_return_code) makes the datum RECOVERED: the job can succeed, the datum adds no output
    and is not skipped by later jobs. None when the attempt was cancelled meanwhile."""
    started, run, stats = so_far
    code, reason = failure
    out = request.pfs_dir / "out"
    clear_pfs(out)  # what the failed cmd wrote is not err_cmd's to see
    out.mkdir()
    shipper = _shipper(ctx, plan, datum, attempt, first=first_segment)
    try:
        session = ctx.session(plan, spec, err_cmd=True)
        lease.on_cancel(session.close)
        err_run = session.run(dataclasses.replace(request, sink=shipper))
        shipper.catch_up("stdout", err_run.stdout)
        shipper.catch_up("stderr", err_run.stderr)
    except RunCancelled:
        if lease.cancelled:
            ctx.drop_session(plan, err_cmd=True)
            return None
        raise
    except Unavailable:
        raise
    except HerdError as exc:
        if lease.cancelled:
            ctx.drop_session(plan, err_cmd=True)
            return None
        return _finish(ctx, plan, datum, attempt, started, run, stats, f"{reason}; err_cmd failed: {exc}", error=code)
    finally:
        shipper.close()
    if lease.cancelled:
        ctx.drop_session(plan, err_cmd=True)
        return None
    err_failure = _user_code_failure(spec, err_run)
    if err_failure is not None:
        why = err_failure[1].replace("user code", "err_cmd", 1)
        return _finish(ctx, plan, datum, attempt, started, run, stats, f"{reason}; {why}", error=code)
    return _finish(ctx, plan, datum, attempt, started, run, stats, f"{reason}; recovered by err_cmd",
                   error=code, recovered=True)


def _user_code_failure(spec: PipelineSpec, run: RunResult) -> tuple[str, str] | None:
    """(error code, reason) when user code failed, None when it succeeded."""
    if run.oom_killed:
        limit = spec.resource_limits.memory if spec.resource_limits is not None else None
        return "oom", f"user code was killed: out of memory (resource_limits.memory = {limit} bytes)"
    if run.timed_out:
        return "timeout", f"datum timed out after {spec.datum_timeout}s (datum_timeout)"
    if run.exit_code == 0 or run.exit_code in spec.transform.accept_return_code:
        return None
    return "user_code", f"user code exited with code {run.exit_code}"


def _give_back(ctx: WorkerContext, plan: JobPlan, datum: PlannedDatum, attempt: Attempt, exc: Unavailable) -> DatumResult | None:
    """Mark the attempt given back (it uses no try); a FAILED result once the outage lasts too long.

    If storage is down, marking fails too and raises: the lease then expires, and the scheduler
    finds the datum lost and sends it again."""
    at = ctx.clock()
    ctx.ledger.give_back(attempt, at, str(exc))
    since = ctx.ledger.attempts(plan.job_id, datum.id).outage_since()
    if since is None or at - since < ctx.settings.outage_seconds:
        return None
    stamp = now()
    return DatumResult(
        job_id=plan.job_id, datum_id=datum.id, datum_hash=datum.hash, state=DatumState.FAILED, attempt=attempt.number,
        reason=f"{exc} (for {at - since:.0f}s, longer than HERD_OUTAGE_SECONDS={ctx.settings.outage_seconds:g})",
        error=exc.code, worker=ctx.settings.worker_id, started=stamp, finished=stamp,
    )


def _finish(
    ctx: WorkerContext, plan: JobPlan, datum: PlannedDatum, attempt: Attempt, started: datetime,
    run: RunResult | None, stats: _Stats, reason: str, outputs: dict[str, FileEntry] | None = None,
    error: str | None = None, recovered: bool = False, inline: dict[str, bytes] | None = None,
) -> DatumResult:
    """The attempt's result; a RECOVERED one keeps the failure's code and no output. `inline`:
    the bytes of outputs not stored (worker/outputs.py INLINE_BYTES), carried in the result."""
    state = DatumState.RECOVERED if recovered else DatumState.FAILED if error else DatumState.SUCCESS
    metrics.transferred(plan.pipeline, stats["download_bytes"], stats["upload_bytes"])
    log = {
        "job_id": plan.job_id, "pipeline": plan.pipeline, "datum_id": datum.id, "attempt": attempt.number,
        "worker": ctx.settings.worker_id, "state": state.value, "reason": reason, "error": error,
        "exit_code": None if run is None else run.exit_code,
        "data": [{"path": f"{i.name}:{i.path}", "commit": i.commit} for i in plan.current(datum).inputs],
        "ts": now().isoformat(),
    }  # what user code printed is in the attempt's live log segments (worker/log_shipper.py)
    if state != DatumState.SUCCESS:
        ctx.ledger.put_log(plan.job_id, datum.id, attempt.number, log)  # why it failed: get-logs shows it
    if recovered:
        outputs = None  # Pachyderm: a recovered datum's output is not committed
    return DatumResult(
        job_id=plan.job_id, datum_id=datum.id, datum_hash=datum.hash, state=state, attempt=attempt.number,
        exit_code=None if run is None else run.exit_code, reason=reason, error=error, worker=ctx.settings.worker_id,
        started=started, finished=now(), stats=JobStats(**stats), outputs=outputs or {},
        inline={digest: inline_text(data) for digest, data in (inline or {}).items()},
    )


def _store_or_give_back(
    ctx: WorkerContext, plan: JobPlan, datum: PlannedDatum, attempt: Attempt, result: DatumResult,
) -> DatumState:
    """Store the attempt's result; an outage meets it as one running it would (`_outage`)."""
    try:
        return _store(ctx, result, plan.pipeline)
    except Unavailable as exc:
        return _outage(ctx, plan, datum, attempt, exc)


def _outage(ctx: WorkerContext, plan: JobPlan, datum: PlannedDatum, attempt: Attempt, exc: Unavailable) -> DatumState:
    """Give the attempt back (it uses no try) and raise `exc`, or store a FAILED result once the
    outage has lasted too long."""
    failed = _give_back(ctx, plan, datum, attempt, exc)
    if failed is None:
        raise exc
    return _store(ctx, failed, plan.pipeline)


def _store(ctx: WorkerContext, result: DatumResult, pipeline: str) -> DatumState:
    """Store the result; if another delivery stored one first, that one stands."""
    if ctx.ledger.put_result(result):
        metrics.stored(pipeline, result)  # counted once: only the delivery whose result stands
        return result.state
    winner = ctx.ledger.read_result(result.job_id, result.datum_id)
    return winner.state if winner is not None else result.state
