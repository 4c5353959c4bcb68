"""Read-side of pipelines: jobs, datums, logs, flush-commit. The CLI's view of job records."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from scheduler import dag
from scheduler.jobs import DatumResult, JobInfo, JobStatus
from scheduler.records import PlannedDatum
from scheduler.spec import parse_spec
from scheduler.store import RecordStore
from storage.errors import Conflict, DatumNotFound, HerdError, InvalidArgument
from storage.model import Commit
from storage.repos import Pfs


class Jobs:
    """Queries over job records; `settle` lets flush-commit drive an embedded scheduler."""

    def __init__(self, pfs: Pfs, settle: Callable[[], None] | None = None) -> None:
        self.pfs = pfs
        self.records = RecordStore(pfs.objects)
        self._settle = settle

    def list(self, pipeline: str | None = None) -> list[tuple[JobInfo, JobStatus]]:
        """Jobs newest first, of one pipeline or of all."""
        names = [pipeline] if pipeline else self.records.pipeline_names()
        if pipeline:
            self.records.get_pipeline(pipeline)
        out = []
        for name in names:
            for job_id in self.records.job_markers(name):
                info = self.records.read_job(job_id)
                if info is not None:
                    out.append((info, self.records.read_status(job_id) or JobStatus()))
        return sorted(out, key=lambda pair: pair[0].created, reverse=True)

    def inspect(self, job: str) -> tuple[JobInfo, JobStatus]:
        info = self.records.get_job(job)
        return info, self.records.read_status(info.id) or JobStatus()

    def datums(self, job: str) -> tuple[str, list[tuple[PlannedDatum, DatumResult | None]]]:
        """A job's datums with their results, failed first (as pachctl lists them)."""
        info = self.records.get_job(job)
        plan = self.records.read_plan(info.id)
        if plan is None:
            return info.id, []
        results = {r.datum_id: r for r in self.records.iter_results(info.id)}
        rows = [(d, results.get(d.id)) for d in plan.datums]
        rank = {"FAILED": 0, "STARTING": 1, "SUCCESS": 2, "SKIPPED": 3}
        rows.sort(key=lambda row: rank.get("SKIPPED" if row[0].skip else (row[1].state.value if row[1] else "STARTING"), 9))
        return info.id, rows

    def datum(self, job: str, datum: str) -> tuple[str, PlannedDatum, DatumResult | None]:
        info = self.records.get_job(job)
        planned = self._find_datum(info.id, datum)
        return info.id, planned, self.records.read_result(info.id, planned.id)

    def _find_datum(self, job_id: str, key: str) -> PlannedDatum:
        plan = self.records.read_plan(job_id)
        if plan is None:
            raise DatumNotFound(job_id, key)
        matches = [d for d in plan.datums if d.id.startswith(key) or any(i.path == key for i in d.inputs)]
        if len(matches) != 1:
            raise DatumNotFound(job_id, key) if not matches else InvalidArgument(
                f"datum '{key}' matches {len(matches)} datums in job '{job_id}'; give more of its id"
            )
        return matches[0]

    def restart_datum(self, job: str, key: str) -> None:
        """Let a running datum be tried again now: its current attempt's lease is ended."""
        info = self.records.get_job(job)
        planned = self._find_datum(info.id, key)
        result = self.records.read_result(info.id, planned.id)
        if result is not None:
            raise Conflict(
                f"datum '{planned.id}' of job '{info.id}' already finished ({result.state.value}); "
                "restart-datum only restarts running datums"
            )
        attempts = self.records.attempts(info.id, planned.id)
        if attempts:
            last = attempts[-1]
            self.records.renew_attempt(info.id, planned.id, last["attempt"], {**last, "lease_until": 0})
        self.records.update_status(info.id, lambda s: s.model_copy(update={"restart": s.restart + 1}))

    def logs(self, pipeline: str | None, job: str | None, datum: str | None) -> Iterator[dict]:
        """Log entries (one per datum attempt), oldest job first."""
        if datum and not job:
            raise InvalidArgument("--datum needs --job: datum ids are per job")
        if job:
            info = self.records.get_job(job)
            datum_id = self._find_datum(info.id, datum).id if datum else None
            yield from self.records.logs(info.id, datum_id)
            return
        for info, _ in reversed(self.list(pipeline)):
            yield from self.records.logs(info.id)

    def flush_commit(
        self, repo: str, ref: str, timeout: float | None = None, poll: float = 0.2,
        on_wait: Callable[[str, int, int], None] | None = None,
    ) -> list[Commit]:
        """Wait until every pipeline downstream of the commit has run on it; their output commits.

        Pipelines are taken in topological order, and a pipeline's output counts only once it
        was computed from the commit AND from the outputs already found upstream of it (a
        montage crossing `images` with `edges` waits for the job that saw the new edges too).
        `on_wait(pipeline, done, total)` is called while waiting (a progress bar).
        """
        commit = self.pfs.inspect_commit(repo, ref)
        pipelines = self.records.pipeline_graph()
        downstream = dag.downstream(repo, pipelines)
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._settle is not None:
            self._settle()
        found: dict[str, Commit] = {commit.repo: commit}
        out: list[Commit] = []
        for done, name in enumerate(downstream):
            required = {(r, found[r].id) for r in pipelines[name] if r in found}
            while True:
                output = self._output_for(name, required)
                if output is not None:
                    if output is not False:
                        found[name] = output
                        out.append(output)
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise HerdError(f"flush-commit timed out waiting for pipeline '{name}' on {repo}@{commit.id}")
                if on_wait is not None:
                    on_wait(name, done, len(downstream))
                time.sleep(poll)
        return out

    def _output_for(self, pipeline: str, required: set[tuple[str, str]]) -> Commit | None | bool:
        """The newest output commit computed from every `required` commit; False if none will come."""
        info = self.records.read_pipeline(pipeline)
        if info is None or info.stopped:
            return False
        branch = parse_spec(info.spec).output_branch
        try:
            commits = self.pfs.list_commits(pipeline, branch)
        except HerdError:
            return None
        for c in commits:
            if c.finished is not None and required <= {(p.repo, p.id) for p in c.provenance}:
                return c
        for job_id in self.records.job_markers(pipeline):
            job = self.records.read_job(job_id)
            status = self.records.read_status(job_id)
            if job and status and status.state.value == "JOB_KILLED" and required <= {(i.repo, i.id) for i in job.inputs}:
                return False
        return None
