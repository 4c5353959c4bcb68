"""Read-side of pipelines: jobs, datums, logs, flush-commit. The CLI's view of job records."""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from scheduler import dag
from scheduler.history import Histories
from scheduler.job_records import DatumResult, JobInfo, JobStatus
from scheduler.logs import (
    HERD_STREAM, SUMMARY_SEQ, LogLine, decode_segment, input_matches, last, ordered, summary_lines,
)
from scheduler.plan import input_branches
from scheduler.records import PlannedDatum
from scheduler.spec import parse_spec
from scheduler.store import PpsStore
from scheduler.triggers import owed_jobs
from storage import layout
from storage.errors import CommitNotFound, DatumNotFound, HerdError, InvalidArgument, RepoNotFound
from storage.model import Commit
from storage.repos import Pfs

FOLLOW_POLL_SECONDS = 0.5  # get-logs -f: how often new lines are looked for


@dataclass(frozen=True)
class LogScope:
    """get-logs' selection, its names resolved: a job id (and datum id), or a pipeline, or all."""

    pipeline: str | None
    job: str | None
    datum: str | None
    inputs: tuple[str, ...] = ()


@dataclass
class LogCursor:
    """How far a reader (get-logs -f) has read: keys read, jobs known, jobs read after they ended."""

    seen: set[str] = field(default_factory=set)
    jobs: dict[str, tuple[str, str]] = field(default_factory=dict)  # job id -> (created, pipeline)
    finished: set[str] = field(default_factory=set)


def _log_lines(data: bytes, job_id: str, pipeline: str, datum: str, attempt: int, seq: int | None) -> list[LogLine]:
    """A segment's lines, or a summary's (a record an earlier herd wrote with stdout/stderr)."""
    if seq is not None:
        return decode_segment(data, job_id, datum, attempt, seq, pipeline)
    try:
        record = json.loads(data)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return [LogLine(job_id, datum, attempt, "", HERD_STREAM, f"unreadable summary of attempt {attempt}", "",
                        pipeline, SUMMARY_SEQ)]
    return [replace(line, pipeline=line.pipeline or pipeline) for line in summary_lines(record, job_id, datum, attempt)]


class JobQueries:
    """Read-only queries over job records (writes are `Pipelines` verbs); `settle` lets
    flush-commit drive an embedded scheduler."""

    def __init__(self, pfs: Pfs, settle: Callable[[], None] | None = None) -> None:
        self.pfs = pfs
        self.records = PpsStore(pfs.objects)
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

    def datums(self, job: str) -> tuple[str, builtins.list[tuple[PlannedDatum, DatumResult | None]]]:
        """A job's datums with their results, failed first (as pachctl lists them)."""
        info = self.records.get_job(job)
        plan = self.records.read_plan(info.id)
        if plan is None:
            return info.id, []
        results = {r.datum_id: r for r in self.records.iter_results(info.id)}
        rows = [(plan.current(d), results.get(d.id)) for d in plan.datums]
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
        return plan.current(matches[0])

    def logs(self, pipeline: str | None, job: str | None, datum: str | None) -> Iterator[dict[str, Any]]:
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

    def log_scope(
        self, pipeline: str | None, job: str | None, datum: str | None, inputs: builtins.list[str] | None = None,
    ) -> LogScope:
        """What get-logs reads: a job (and a datum of it), a pipeline's jobs or every job; only
        datums whose input files match `inputs` when given. Unknown names fail here, once."""
        if datum and not job:
            raise InvalidArgument("--datum needs --job: datum ids are per job")
        if job:
            info = self.records.get_job(job)
            datum_id = self._find_datum(info.id, datum).id if datum else None
            return LogScope(pipeline, info.id, datum_id, tuple(inputs or ()))
        if pipeline:
            self.records.get_pipeline(pipeline)
        return LogScope(pipeline, None, None, tuple(inputs or ()))

    def new_log_lines(self, scope: LogScope, cursor: LogCursor | None = None) -> builtins.list[LogLine]:
        """Lines of the scope's segments and summaries the cursor has not seen yet, in order. A
        follower calls it again and again with one cursor: segments are create-only, so a key
        read once never changes, and a job read after it ended is not read again."""
        cursor = cursor if cursor is not None else LogCursor()
        lines: builtins.list[LogLine] = []
        for job_id, pipeline in self._log_jobs(scope, cursor):
            if job_id in cursor.finished:
                continue
            status = self.records.read_status(job_id)
            ended = status is not None and status.state.terminal  # read before the keys: none is missed
            wanted = self._datums_matching(job_id, scope.inputs) if scope.inputs else None
            for key in self.records.log_keys(job_id, scope.datum):
                if key in cursor.seen:
                    continue
                cursor.seen.add(key)
                parsed = layout.parse_log_key(key)
                if parsed is None or (wanted is not None and parsed[0] not in wanted):
                    continue
                data = self.records.read_log_object(key)
                if data is not None:
                    lines += _log_lines(data, job_id, pipeline, *parsed)
            if ended:
                cursor.finished.add(job_id)
        return ordered(lines)

    def _log_jobs(self, scope: LogScope, cursor: LogCursor) -> builtins.list[tuple[str, str]]:
        """(job id, pipeline) of the scope, oldest first; a pipeline's new jobs join as they come
        (only their markers are listed again, each job's record is read once)."""
        if scope.job is not None:
            names: builtins.list[str] = []
            if scope.job not in cursor.jobs:
                job = self.records.get_job(scope.job)
                cursor.jobs[job.id] = (job.created.isoformat(), job.pipeline)
        else:
            names = [scope.pipeline] if scope.pipeline else self.records.pipeline_names()
        for name in names:
            for job_id in self.records.job_markers(name):
                if job_id not in cursor.jobs:
                    info = self.records.read_job(job_id)
                    if info is not None:
                        cursor.jobs[job_id] = (info.created.isoformat(), info.pipeline)
        return [(job_id, pipeline) for job_id, (_, pipeline) in sorted(cursor.jobs.items(), key=lambda kv: kv[1][0])]

    def follow_logs(
        self, scope: LogScope, tail: int | None = None, follow: bool = False, poll: float = FOLLOW_POLL_SECONDS,
        gone: Callable[[], bool] | None = None,
    ) -> Iterator[LogLine]:
        """get-logs: the scope's lines (the last `tail` of them), then with `follow` each new
        line as it is written, until the followed job ends (a pipeline's logs never end) or
        `gone()` says the reader left (a server's client that hung up)."""
        cursor = LogCursor()
        yield from last(self.new_log_lines(scope, cursor), tail)
        while follow and not (gone is not None and gone()):
            ended = self.log_scope_ended(scope)  # before the read: it then sees every last line
            if not ended:
                time.sleep(poll)
            yield from self.new_log_lines(scope, cursor)
            if ended:
                return

    def image_digest(self, job: str) -> str | None:
        """The image id a job's datums ran (worker/image_digest.py); None before any ran."""
        return self.records.read_image(self.records.get_job(job).id)

    def last_jobs(self) -> dict[str, tuple[str, JobStatus]]:
        """Each pipeline's newest job and its status (list-pipeline's LAST JOB); a pipeline
        without jobs is absent."""
        out: dict[str, tuple[str, JobStatus]] = {}
        for name in self.records.pipeline_names():
            markers = self.records.job_markers(name)
            if markers:
                out[name] = (markers[-1], self.records.read_status(markers[-1]) or JobStatus())
        return out

    def log_scope_ended(self, scope: LogScope) -> bool:
        """Whether a followed job has ended (a pipeline's logs never end)."""
        if scope.job is None:
            return False
        status = self.records.read_status(scope.job)
        return status is not None and status.state.terminal

    def _datums_matching(self, job_id: str, inputs: tuple[str, ...]) -> set[str]:
        plan = self.records.read_plan(job_id)
        if plan is None:
            return set()
        return {d.id for d in plan.datums if input_matches(((i.name, i.path) for i in d.inputs), inputs)}

    def wait_job(
        self, job: str, poll: float = 0.2, on_wait: Callable[[str, int, int], None] | None = None,
    ) -> tuple[JobInfo, JobStatus]:
        """inspect-job --block: the job once it has ended, however it ended."""
        info = self.records.get_job(job)
        if self._settle is not None:
            self._settle()
        while True:
            status = self.records.read_status(info.id)
            if status is not None and status.state.terminal:
                return info, status
            if on_wait is not None:
                on_wait(info.pipeline, 0, 1)
            time.sleep(poll)

    def flush_commit(
        self, repo: str, ref: str, timeout: float | None = None, poll: float = 0.2,
        on_wait: Callable[[str, int, int], None] | None = None,
    ) -> builtins.list[Commit]:
        """The output commits of `flush_jobs` (the jobs that ended with one), upstream first."""
        return [row.output for row in self.flush_jobs(repo, ref, timeout, poll, on_wait) if row.output is not None]

    def flush_jobs(
        self, repo: str, ref: str, timeout: float | None = None, poll: float = 0.2,
        on_wait: Callable[[str, int, int], None] | None = None,
    ) -> builtins.list[FlushedJob]:
        """Wait until every job downstream of the commit has ended, however it ended; those jobs.

        Pipelines are taken in topological order, and a pipeline's job counts only when it was
        computed from the commit AND from the outputs already found upstream of it (a montage
        crossing `images` with `edges` waits for the job that saw the new edges too). The wait
        rests on job records, not on output commits: a job that failed, was killed or could not
        run ends it as well as a success. A pipeline is waited for only while its current
        version owes a job on those inputs that has not ended; an upstream job that ended
        without an output commit leaves nothing for the pipelines below it to wait for.
        `on_wait(pipeline, done, total)` is called while waiting (a progress bar, a watchdog).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        commit = self._finished_commit(repo, ref, deadline, on_wait)
        pipelines = self.records.pipeline_graph()
        downstream = dag.downstream(repo, pipelines)
        if self._settle is not None:
            self._settle()
        histories = Histories(self.pfs)
        found: dict[str, str | None] = {commit.repo: commit.id}  # repo -> commit id; None: ended without one
        out: builtins.list[FlushedJob] = []
        for done, name in enumerate(downstream):
            required = frozenset((r, commit_id) for r in pipelines[name] if (commit_id := found.get(r)))
            rows: builtins.list[FlushedJob] = []
            while required:
                ended = self._jobs_on(name, required, histories)
                if ended is not None:
                    rows = ended
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise HerdError(f"flush-commit timed out waiting for pipeline '{name}' on {repo}@{commit.id}")
                if on_wait is not None:
                    on_wait(name, done, len(downstream))
                time.sleep(poll)
            outputs = [row.output for row in rows if row.output is not None]
            found[name] = outputs[-1].id if outputs else None
            out.extend(rows)
        return out

    def _finished_commit(
        self, repo: str, ref: str, deadline: float | None, on_wait: Callable[[str, int, int], None] | None,
    ) -> Commit:
        """The commit, once finished: no job is owed on an open commit yet."""
        while True:
            commit = self.pfs.inspect_commit(repo, ref)
            if commit.finished is not None:
                return commit
            if deadline is not None and time.monotonic() > deadline:
                raise HerdError(f"flush-commit timed out waiting for commit {repo}@{commit.id} to be finished")
            if on_wait is not None:
                on_wait(repo, 0, 0)
            time.sleep(0.2)

    def _jobs_on(
        self, pipeline: str, required: frozenset[tuple[str, str]], histories: Histories,
    ) -> builtins.list[FlushedJob] | None:
        """The pipeline's jobs whose inputs hold every `required` commit, oldest first, once
        every such job the current version owes has ended; None while one has not."""
        info = self.records.read_pipeline(pipeline)
        if info is None:
            return []  # deleted meanwhile: nothing will come
        owed: list[str] = []
        if not info.stopped:  # a stopped pipeline makes no job until it starts: waiting would hang
            spec = parse_spec(info.spec)
            keys = sorted(input_branches(spec))
            for job_id, inputs in owed_jobs(info, keys, {key: histories.finished(*key) for key in keys}):
                if required <= {(i.repo, i.id) for i in inputs}:
                    owed.append(job_id)
        ids = list(dict.fromkeys([*self.records.job_markers(pipeline), *owed]))
        rows: list[FlushedJob] = []
        for job_id in ids:
            job = self.records.read_job(job_id)
            if job is None or not required <= {(i.repo, i.id) for i in job.inputs}:
                if job_id in owed:
                    return None  # owed, not created yet
                continue
            status = self.records.read_status(job_id)
            if job_id in owed and (status is None or not status.state.terminal):
                return None
            rows.append(FlushedJob(pipeline, job, status or JobStatus(), self._output(job, status)))
        rows.sort(key=lambda row: row.job.created)
        return rows

    def _output(self, job: JobInfo, status: JobStatus | None) -> Commit | None:
        if status is None or not status.output_commit:
            return None
        try:
            return self.pfs.inspect_commit(job.output_repo, status.output_commit)
        except (RepoNotFound, CommitNotFound):
            return None  # deleted since (delete-commit, delete-repo): the job's row stays


@dataclass(frozen=True)
class FlushedJob:
    """One job downstream of a flushed commit: its records and its output commit, if it made one."""

    pipeline: str
    job: JobInfo
    status: JobStatus
    output: Commit | None
