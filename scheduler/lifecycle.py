"""A job's life in storage: create it with its plan, finish it with its output commit.

Each function is idempotent: ids are deterministic and writes are create-only or
compare-and-set, so the reconcile loop may call them again after a crash at any point.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from scheduler.datums import Commits, sole_pfs
from scheduler.inline_outputs import pack_inline
from scheduler.job_records import DatumResult, DatumState, JobInfo, JobState, JobStats, JobStatus, transition
from scheduler.merge import merge_changes, merged
from scheduler.plan import Layer, plan_datums, plan_layer
from scheduler.records import DatumIndex, IndexEntry, JobPlan, PipelineInfo, PlannedDatum, layered_entries, worth_a_layer
from scheduler.spec import PipelineSpec
from scheduler.store import PpsStore, now
from storage import failpoints
from storage.collector import collector_paused
from storage.egress import egress_commit
from storage.errors import DataCorrupted, EgressFailed, HerdError
from storage.model import Commit, CommitRef, FileEntry, Manifest
from storage.repos import Pfs

OUTAGES = frozenset({"storage_unavailable", "engine_unavailable", "broker_unavailable"})


# Both make a job's worth of records at once (a plan or index entry per datum, the output
# manifest): with the collector running they spent about a quarter of a re-run over 10,000
# datums in it (bench/pipeline.py, WHY_RERUN).
@collector_paused()
def create_job(
    pfs: Pfs, records: PpsStore, pipeline: PipelineInfo, spec: PipelineSpec, job_id: str,
    inputs: tuple[CommitRef, ...],
) -> JobPlan:
    """Make the job's info, plan and status (each step skipped when already there)."""
    info = records.read_job(job_id)
    if info is None:
        info = JobInfo(
            id=job_id, pipeline=pipeline.name, pipeline_version=pipeline.version, salt=pipeline.salt,
            inputs=inputs, created=now(), output_repo=pipeline.name, output_branch=spec.output_branch,
        )
        records.create_job(info)
        info = records.read_job(job_id) or info
    plan = records.read_plan(job_id)
    commits = [pfs.inspect_commit(ref.repo, ref.id) for ref in inputs]
    failed = [c for c in commits if c.failed_reason]
    if plan is None:
        previous = records.latest_index_before(pipeline.name, job_id)
        index = records.read_index(pipeline.name, previous) if previous else None
        manifests = {} if failed else {
            (ref.repo, ref.branch or ""): (c.id, pfs.read_manifest(c)) for ref, c in zip(inputs, commits)
        }
        made = None if failed else _layered_plan(pfs, records, spec, pipeline, manifests, index, previous)
        layer: Layer | None = None
        if made is not None:
            datums, layer = made
        else:
            datums = [] if failed else plan_datums(spec, pipeline.name, pipeline.salt, manifests, index)
        plan = JobPlan(
            job_id=job_id, pipeline=pipeline.name, pipeline_version=pipeline.version, spec=pipeline.spec,
            salt=pipeline.salt, inputs=inputs, previous_index=previous, datums=tuple(datums),
        )
        if layer is not None:
            plan = plan.model_copy(update={
                "base": layer.base, "depth": layer.depth, "dropped": layer.dropped, "flipped": layer.flipped,
            })
        records.write_plan(plan, None if layer is None else layer.added)  # the datums whole in memory, a layer stored
        failpoints.hit("scheduler.after_plan")
        plan = records.read_plan(job_id) or plan
    if failed:
        # Like a failed job, it leaves a failed output commit: downstream jobs and flush-commit see it end.
        reason = "inputs failed: " + ", ".join(f"{c.repo}@{c.id}" for c in failed)
        write_output(pfs, info, Manifest(), failed_reason=reason)
        _set_state(records, job_id, JobState.JOB_UNRUNNABLE, reason=reason, plan=plan, output=True)
    else:
        _set_state(records, job_id, JobState.JOB_RUNNING, plan=plan)
    return plan


def _layered_plan(
    pfs: Pfs, records: PpsStore, spec: PipelineSpec, pipeline: PipelineInfo, manifests: Commits,
    index: DatumIndex | None, previous: str | None,
) -> tuple[list[PlannedDatum], Layer] | None:
    """The plan as a layer on the previous job's (the one whose index it reuses), when one can
    be made (plan_layer): planning and storing only what changed since that job's input."""
    leaf = sole_pfs(spec.input)
    base = records.read_plan(previous) if previous is not None and leaf is not None else None
    if leaf is None or base is None:
        return None
    ref = next((r for r in base.inputs if (r.repo, r.branch or "") == (leaf.repo, leaf.branch)), None)
    if ref is None:
        return None
    base_commit = pfs.commits.read_commit(ref.repo, ref.id)
    if base_commit is None:  # gone since (its repo deleted and made again): plan whole
        return None
    base_files = pfs.read_manifest(base_commit).files
    return plan_layer(spec, pipeline.name, pipeline.version, pipeline.salt, manifests, index, base, base_files)


@collector_paused()
def finish_job(pfs: Pfs, records: PpsStore, plan: JobPlan, spec: PipelineSpec) -> JobStatus:
    """All datums have results: merge outputs, write the output commit and the datum index."""
    failpoints.hit("scheduler.before_finish")
    info = records.get_job(plan.job_id)
    results = {r.datum_id: r for r in records.iter_results(plan.job_id)}
    restarts = sum(max(0, r.attempt - 1) for r in results.values())
    previous = records.read_index(plan.pipeline, plan.previous_index) if plan.previous_index else None
    prior = previous.entries if previous is not None else {}
    reused = {d.hash for d in plan.datums if d.skip}
    lacking = not reused <= prior.keys()  # a skipped datum the index lacks fails (never in a consistent store)
    added: dict[str, IndexEntry] = {}
    carried: dict[str, dict[str, bytes]] = {}  # datum hash -> its inline outputs' bytes
    failed: list[str] = []
    corrupt: list[str] = []  # why a result's inline bytes were refused
    recovered = 0
    stats = JobStats()
    for datum in plan.datums:
        if datum.skip and (not lacking or datum.hash in prior):
            continue
        result = results.get(datum.id)
        if result is not None and result.state == DatumState.RECOVERED:
            # err_cmd recovered it: the job may succeed, but its output is not committed and it
            # stays out of the index, so the next job runs it again (Pachyderm never skips one).
            recovered += 1
            stats = stats.plus(result.stats)
            continue
        if result is None or result.state != DatumState.SUCCESS:
            failed.append(datum.id)
            continue
        if result.inline:
            try:
                carried[datum.hash] = result.inline_chunks()
            except DataCorrupted as exc:
                failed.append(datum.id)
                corrupt.append(str(exc))
                continue
        stats = stats.plus(result.stats)
        added[datum.hash] = IndexEntry(sort_key=datum.sort_key, outputs=result.outputs)
    added = pack_inline(pfs.objects, added, carried)  # stored before the index names them
    removed = tuple(sorted(prior.keys() - reused))
    entries = layered_entries(prior, removed, added)
    manifest: Manifest | None = None
    shared: tuple[str, ...] | None = None  # output paths several datums wrote; None: not merged
    clash = ""
    if not failed:
        manifest = _merge_changes(pfs, info, previous, [prior[h].outputs for h in removed], added)
        if manifest is not None:
            shared = previous.shared if previous is not None else None
        else:
            try:
                manifest, shared = merged((entry.sort_key, entry.outputs) for entry in entries.values())
            except HerdError as exc:
                clash = str(exc)
    index = DatumIndex(job_id=plan.job_id, shared=shared, entries=entries)
    if previous is not None and worth_a_layer(previous.depth, len(removed) + len(added), len(entries)):
        # Stored as what changed on the index this job reused; read whole (PpsStore.read_index).
        index = index.model_copy(update={"base": previous.job_id, "depth": previous.depth + 1, "removed": removed})
        records.write_index(plan.pipeline, index, added)
    else:
        records.write_index(plan.pipeline, index)
    failpoints.hit("scheduler.after_index")
    skipped = sum(1 for d in plan.datums if d.skip)
    counters: dict[str, object] = {
        "data_total": len(plan.datums), "data_skipped": skipped, "data_failed": len(failed),
        "data_recovered": recovered, "data_processed": len(plan.datums) - skipped - len(failed) - recovered,
        "stats": stats,
        "failed_datums": tuple(failed), "restart": restarts,
    }
    if failed:
        reason = _failure_reason(failed, results, corrupt)
        write_output(pfs, info, Manifest(), failed_reason=reason)
        return _set_state(records, plan.job_id, JobState.JOB_FAILURE, reason=reason, output=True, counters=counters)
    if manifest is None:
        write_output(pfs, info, Manifest(), failed_reason=clash)
        return _set_state(records, plan.job_id, JobState.JOB_FAILURE, reason=clash, output=True, counters=counters)
    write_output(pfs, info, manifest)
    failpoints.hit("scheduler.after_output_commit")
    # With an egress URL the job is done only once its files are there too (egress_job).
    done = JobState.JOB_EGRESSING if spec.egress is not None and spec.egress.url else JobState.JOB_SUCCESS
    return _set_state(records, plan.job_id, done, output=True, counters=counters)


def _merge_changes(
    pfs: Pfs, info: JobInfo, previous: DatumIndex | None, removed: list[dict[str, FileEntry]],
    added: dict[str, IndexEntry],
) -> Manifest | None:
    """The job's output from the previous job's output commit (the merge of the index this job
    reused) by what changed (merge.merge_changes); None when a whole merge must make it: no such
    commit (that job failed, or has not committed yet), or an index of an older herd."""
    if previous is None or previous.shared is None:
        return None
    before = pfs.commits.read_commit(info.output_repo, previous.job_id)
    if before is None or before.failed_reason is not None or before.finished is None:
        return None
    # No order among them: merge_changes declines any path two outputs write.
    return merge_changes(pfs.read_manifest(before), previous.shared, removed, [e.outputs for e in added.values()])


def egress_job(pfs: Pfs, records: PpsStore, job_id: str, spec: PipelineSpec, s3_endpoint_url: str | None) -> JobStatus:
    """Copy a JOB_EGRESSING job's output commit to egress.URL, then end it JOB_SUCCESS; a target
    that refuses (or damaged bytes) ends it JOB_FAILURE naming the URL. Copying overwrites by key,
    so a pass after a crash mid-copy copies again and ends the same; an outage (Unavailable)
    leaves the job EGRESSING for the next pass."""
    info = records.get_job(job_id)
    url = spec.egress.url if spec.egress is not None else ""
    if url:
        try:
            egress_commit(pfs, info.output_repo, job_id, url, s3_endpoint_url)
        except (EgressFailed, DataCorrupted) as exc:
            reason = str(exc) if isinstance(exc, EgressFailed) else f"egress to '{url}' failed: {exc}"
            return _set_state(records, job_id, JobState.JOB_FAILURE, reason=reason)
    return _set_state(records, job_id, JobState.JOB_SUCCESS)


def _failure_reason(failed: list[str], results: dict[str, DatumResult], corrupt: list[str]) -> str:
    """Names the failed datums, and the cause when it was not user code (an outage, used-up
    tries, a result whose inline outputs do not match their hashes)."""
    reason = f"failed to process datum(s): {', '.join(failed[:10])}" + (" ..." if len(failed) > 10 else "")
    causes = {r.error: r.reason for d in failed if (r := results.get(d)) is not None and r.error in OUTAGES}
    if causes or corrupt:
        reason += "; " + "; ".join([*sorted(set(causes.values())), *corrupt[:3]])[:500]
    return reason


def fail_datum(records: PpsStore, plan: JobPlan, index: int, reason: str) -> bool:
    """Store a FAILED result for a datum whose tries are used up; False if a result was there first."""
    datum = plan.datums[index]
    stamp = now()
    return records.put_result(DatumResult(
        job_id=plan.job_id, datum_id=datum.id, datum_hash=datum.hash, state=DatumState.FAILED,
        attempt=len(records.attempts(plan.job_id, datum.id)) or 1, reason=reason, error="tries_used_up",
        started=stamp, finished=stamp,
    ))


def write_output(pfs: Pfs, info: JobInfo, manifest: Manifest, failed_reason: str | None = None) -> Commit:
    """The job's output commit, whose id is the job id (so a retry finds it, not a twin)."""
    provenance = provenance_of(pfs, info.inputs)
    return pfs.write_commit(
        info.output_repo, info.output_branch, manifest, provenance=provenance,
        description=f"output of job {info.id}", failed_reason=failed_reason, commit_id=info.id,
    )


def provenance_of(pfs: Pfs, inputs: Iterable[CommitRef]) -> tuple[CommitRef, ...]:
    """Input commits and, transitively, everything they were computed from."""
    seen: dict[tuple[str, str], CommitRef] = {}
    for ref in inputs:
        seen.setdefault((ref.repo, ref.id), ref)
        for upstream in pfs.inspect_commit(ref.repo, ref.id).provenance:
            seen.setdefault((upstream.repo, upstream.id), upstream)
    return tuple(seen.values())


def kill_job(records: PpsStore, job_id: str, reason: str) -> JobStatus:
    """Stop a job: it ends JOB_KILLED and leaves no output commit."""
    return _set_state(records, job_id, JobState.JOB_KILLED, reason=reason)


def _set_state(records: PpsStore, job_id: str, state: JobState, reason: str = "", plan: JobPlan | None = None,
               output: bool = False, counters: Mapping[str, object] | None = None) -> JobStatus:
    def change(current: JobStatus) -> JobStatus | None:
        if current.state == state or current.state.terminal:
            return None
        transition(current.state, state, job_id)
        update: dict[str, object] = {"state": state, **(counters or {})}
        if reason:
            update["reason"] = reason
        if plan is not None:
            update["data_total"] = len(plan.datums)
            update["data_skipped"] = sum(1 for d in plan.datums if d.skip)
        if current.started is None:
            update["started"] = now()
        if state.terminal:
            update["finished"] = now()
        if output:
            update["output_commit"] = job_id
        return current.model_copy(update=update)

    return records.update_status(job_id, change)
