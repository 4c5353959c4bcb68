"""Process a batch of datums: claim an attempt, stage /pfs, run user code, store the outcome.

The same function runs in Celery workers and in the embedded in-process dispatcher. Every
step is safe to repeat: a datum that already has a result is skipped, attempts are counted in
storage (so a datum that kills its worker cannot loop forever), outputs go to content-addressed
blobs, and the first create-only result record wins.
"""

from __future__ import annotations

import time
from enum import Enum
from typing import Any

from scheduler.jobs import DatumResult, DatumState, JobStats
from scheduler.messages import BatchOutcome, DatumBatch
from scheduler.records import JobPlan, PlannedDatum
from scheduler.spec import PipelineSpec
from scheduler.store import RecordStore, now
from storage.errors import HerdError
from storage.objects import ObjectStore
from worker.context import WorkerContext, context_for
from worker.outputs import collect_outputs
from worker.runtime import RunResult, Session
from worker.staging import stage_datum


def process_batch(message: dict[str, Any], objects: ObjectStore | None = None, runtime: str | None = None) -> dict:
    """Task `herd.process_batch`: run the datums of a batch; returns a BatchOutcome as a dict."""
    batch = DatumBatch.model_validate(message)
    ctx = context_for(objects, runtime)
    plan = ctx.records.read_plan(batch.job_id)
    if plan is None:
        return BatchOutcome(job_id=batch.job_id, failed=batch.datums).model_dump()
    status = ctx.records.read_status(batch.job_id)
    if status is not None and status.state.terminal:
        return BatchOutcome(job_id=batch.job_id).model_dump()
    spec = ctx.spec(plan)
    done, failed, deferred = [], [], []
    for index in batch.datums:
        state = run_datum(ctx, plan, spec, index)
        {DatumState.SUCCESS: done, DatumState.FAILED: failed}.get(state, deferred).append(index)
    return BatchOutcome(job_id=batch.job_id, done=tuple(done), failed=tuple(failed), deferred=tuple(deferred)).model_dump()


def run_datum(ctx: WorkerContext, plan: JobPlan, spec: PipelineSpec, index: int) -> DatumState | None:
    """Run one datum to a stored result, retrying up to datum_tries; None if it is not ours."""
    datum = plan.datums[index]
    records = ctx.records
    tries = spec.datum_tries
    while True:
        attempt = _claim(ctx, plan.job_id, datum.id, tries)
        if isinstance(attempt, DatumResult):
            return attempt.state  # another delivery already finished it
        if attempt is Claim.HELD:
            return None  # a duplicate delivery: the holder finishes it, and no try is burnt here
        if attempt is Claim.USED_UP:
            return _store(records, _failed(plan, datum, tries, ctx, f"datum_tries ({tries}) used up"))
        result = _attempt(ctx, plan, spec, datum, attempt)
        if result.state == DatumState.SUCCESS or attempt >= tries:
            return _store(records, result)


class Claim(Enum):
    """Why no attempt was claimed."""

    HELD = "another worker's live lease holds the latest attempt"
    USED_UP = "datum_tries used up"


def _claim(ctx: WorkerContext, job_id: str, datum_id: str, tries: int) -> int | Claim | DatumResult:
    """The next attempt number (create-only), else why not: done, held by a live lease, no tries left."""
    records, body = ctx.records, ctx.lease_body()
    if records.claim_attempt(job_id, datum_id, 1, body) == 1:
        return 1  # the usual case: one create-only write; no result exists before a first attempt
    existing = records.read_result(job_id, datum_id)
    if existing is not None:
        return existing
    latest = records.latest_attempt(job_id, datum_id)
    if ctx.leased_elsewhere(latest):
        return Claim.HELD
    first = int(latest["attempt"]) + 1 if latest else 1
    attempt = records.claim_attempt(job_id, datum_id, tries, body, first=first)
    return Claim.USED_UP if attempt is None else attempt


def _attempt(ctx: WorkerContext, plan: JobPlan, spec: PipelineSpec, datum: PlannedDatum, attempt: int) -> DatumResult:
    started = now()
    pfs_dir = ctx.pfs_dir()
    stats = {"download_time": 0.0, "process_time": 0.0, "upload_time": 0.0, "download_bytes": 0, "upload_bytes": 0}
    run: RunResult | None = None
    lease = (plan.job_id, datum.id, attempt)
    ctx.leases.hold(lease)
    try:
        t0 = time.monotonic()
        stats["download_bytes"] = stage_datum(ctx.blobs, datum.inputs, pfs_dir)
        t1 = time.monotonic()
        session: Session = ctx.session(plan, spec)
        run = session.run(ctx.request(plan, spec, datum, pfs_dir))
        t2 = time.monotonic()
        stats["download_time"], stats["process_time"] = t1 - t0, t2 - t1
        ok = not run.timed_out and (run.exit_code == 0 or run.exit_code in spec.transform.accept_return_code)
        if not ok:
            reason = _failure_reason(spec, run)
            return _finish(ctx, plan, datum, attempt, started, DatumState.FAILED, run, stats, reason)
        manifest = collect_outputs(ctx.blobs, pfs_dir / "out", ctx.settings.output_quota)
        stats["upload_time"] = time.monotonic() - t2
        stats["upload_bytes"] = manifest.size
        return _finish(ctx, plan, datum, attempt, started, DatumState.SUCCESS, run, stats, "", manifest.files)
    except HerdError as exc:
        return _finish(ctx, plan, datum, attempt, started, DatumState.FAILED, run, stats, str(exc))
    finally:
        ctx.leases.release(lease)
        ctx.discard(pfs_dir)


def _failure_reason(spec: PipelineSpec, run: RunResult) -> str:
    if run.timed_out:
        return f"datum timed out after {spec.datum_timeout}s (datum_timeout)"
    return f"user code exited with code {run.exit_code}"


def _finish(ctx, plan, datum, attempt, started, state, run, stats, reason, outputs=None) -> DatumResult:
    log = {
        "job_id": plan.job_id, "pipeline": plan.pipeline, "datum_id": datum.id, "attempt": attempt,
        "worker": ctx.settings.worker_id, "state": state.value, "reason": reason,
        "exit_code": None if run is None else run.exit_code,
        "stdout": "" if run is None else run.stdout.decode(errors="replace"),
        "stderr": "" if run is None else run.stderr.decode(errors="replace"),
        "data": [{"path": f"{i.name}:{i.path}", "commit": i.commit} for i in datum.inputs],
        "ts": now().isoformat(),
    }
    if state != DatumState.SUCCESS or log["stdout"] or log["stderr"]:
        ctx.records.put_log(plan.job_id, datum.id, attempt, log)  # a silent success has nothing to show
    return DatumResult(
        job_id=plan.job_id, datum_id=datum.id, datum_hash=datum.hash, state=state, attempt=attempt,
        exit_code=None if run is None else run.exit_code, reason=reason, worker=ctx.settings.worker_id,
        started=started, finished=now(), stats=JobStats(**stats), outputs=outputs or {},
    )


def _failed(plan: JobPlan, datum: PlannedDatum, tries: int, ctx: WorkerContext, reason: str) -> DatumResult:
    return DatumResult(
        job_id=plan.job_id, datum_id=datum.id, datum_hash=datum.hash, state=DatumState.FAILED,
        attempt=tries, reason=reason, worker=ctx.settings.worker_id, started=now(), finished=now(),
    )


def _store(records: RecordStore, result: DatumResult) -> DatumState:
    """Store the result; if another delivery stored one first, that one stands."""
    if records.put_result(result):
        return result.state
    winner = records.read_result(result.job_id, result.datum_id)
    return winner.state if winner is not None else result.state
