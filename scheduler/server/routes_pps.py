"""Routes of pipelines, jobs, datums, logs and flush-commit: one per method of
scheduler.pipelines.Pipelines and scheduler.queries.JobQueries the CLI calls.

A pipeline name is a path segment (A-Z, a-z, 0-9, '_', '-'); a job id (or prefix), a datum id
or input path, a repo and a ref travel as query parameters. The waits (inspect-job --block,
flush-commit, get-logs -f) answer NDJSON lines as results come (scheduler/server/streaming.py);
what can be refused is checked before the answer starts, so it is refused with its status.

Auth (scheduler/server/permissions.py): a route naming a pipeline or a job is checked before it
runs; the lists, create/update-pipeline, logs, flush-commit and status check here, showing
only the pipelines (output repos) the user may read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, TypeAdapter
from starlette.concurrency import run_in_threadpool

from scheduler.auth.rules import OWNER, READER, WRITER, Principal
from scheduler.cli.waiting import chain
from scheduler.job_records import DatumResult, JobInfo, JobState, JobStatus
from scheduler.queries import FOLLOW_POLL_SECONDS, FlushedJob, JobQueries, LogScope
from scheduler.records import PipelineInfo, PlannedDatum
from scheduler.server.app import Api, api
from scheduler.server.authn import principal
from scheduler.server.streaming import Events, NdjsonResponse, ndjson
from scheduler.spec import MAX_SPEC_BYTES, load_documents
from storage.errors import InvalidSpec

router = APIRouter(tags=["pps"])
ApiDep = Annotated[Api, Depends(api)]
Who = Annotated[Principal, Depends(principal)]
SPEC_BODY = "request body"
WAIT_EVENT_SECONDS = 1.0  # progress of a wait is sent at most this often

FLUSHED = TypeAdapter(FlushedJob)


class JobRow(BaseModel):
    job: JobInfo
    status: JobStatus


class LastJob(BaseModel):
    id: str
    status: JobStatus


class DatumRow(BaseModel):
    datum: PlannedDatum
    result: DatumResult | None


class JobDatums(BaseModel):
    job: str
    datums: list[DatumRow]


class JobDatum(BaseModel):
    job: str
    datum: PlannedDatum
    result: DatumResult | None


class ImageDigest(BaseModel):
    image: str | None


class Scope(BaseModel):
    """A LogScope: get-logs' selection with its names resolved."""

    pipeline: str | None
    job: str | None
    datum: str | None
    inputs: list[str] = []


def jobs_of(a: Api) -> JobQueries:
    """The job queries, their waits settling through the Api (one settle at a time)."""
    return JobQueries(a.pfs, settle=a.settle)


# ---- pipelines -------------------------------------------------------------------------------


@router.get("/pipelines")
def list_pipelines(a: ApiDep, who: Who) -> list[PipelineInfo]:
    infos = a.pipelines.list()
    readable = a.readable(who, (info.name for info in infos))
    return [info for info in infos if info.name in readable]


@router.post("/pipelines")
async def apply_pipelines(
    request: Request, a: ApiDep, who: Who, update: bool = False, reprocess: bool = False,
) -> list[PipelineInfo]:
    """create-pipeline (update-pipeline with `update`): the body is the spec documents as JSON
    objects one after another, all applied or none; the jobs they cause run before the answer
    on the embedded default. Needs reader on every input repo (and writer on the pipeline to
    update it); once auth is active, a pipeline's creator owns its output repo."""
    docs = load_documents(await _spec_body(request), source=SPEC_BODY)

    def apply() -> list[PipelineInfo]:
        from scheduler.spec import parse_spec

        specs = [parse_spec(doc) for doc in docs]  # refused as apply would, before any role is looked up
        for spec in specs:
            for repo in sorted(spec.input_repos()):
                a.require(who, repo, READER)
            if update:
                a.require(who, spec.name, WRITER)
        infos = a.pipelines.apply(docs, update=update, reprocess=reprocess)
        if not update and a.auth.active():
            for info in infos:
                a.auth.set_role(info.name, who.user, OWNER)
        a.settle()
        return infos

    return await run_in_threadpool(apply)


async def _spec_body(request: Request) -> bytes:
    """The body, read no further than one byte past MAX_SPEC_BYTES (then load_documents refuses it)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_SPEC_BYTES:
        raise InvalidSpec(f"invalid pipeline spec file '{SPEC_BODY}': larger than {MAX_SPEC_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_SPEC_BYTES:
            break
    if not bytes(body[:64]).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        raise InvalidSpec(f"invalid pipeline spec file '{SPEC_BODY}': expected pipeline specs as JSON objects")
    return bytes(body)


@router.get("/pipelines/{pipeline}")
def inspect_pipeline(a: ApiDep, pipeline: str) -> PipelineInfo:
    return a.pipelines.inspect(pipeline)


@router.delete("/pipelines/{pipeline}")
def delete_pipeline(a: ApiDep, pipeline: str, keep_repo: bool = False) -> None:
    a.pipelines.delete(pipeline, keep_repo=keep_repo)
    if not keep_repo:
        a.auth.forget_repo(pipeline)  # its output repo went: a new one of this name starts with no roles


@router.post("/pipelines/{pipeline}/stop")
def stop_pipeline(a: ApiDep, pipeline: str) -> PipelineInfo:
    return a.pipelines.set_stopped(pipeline, True)


@router.post("/pipelines/{pipeline}/start")
def start_pipeline(a: ApiDep, pipeline: str) -> PipelineInfo:
    info = a.pipelines.set_stopped(pipeline, False)
    a.settle()  # it catches up on the commits it missed
    return info


# ---- jobs ------------------------------------------------------------------------------------


@router.get("/jobs")
def list_jobs(a: ApiDep, who: Who, pipeline: str | None = None, state: JobState | None = None) -> list[JobRow]:
    """Jobs newest first, of one pipeline or all; only those in `state` when given."""
    jobs = jobs_of(a).list(pipeline)
    readable = a.readable(who, {info.output_repo for info, _ in jobs})
    return [JobRow(job=info, status=status) for info, status in jobs
            if info.output_repo in readable and (state is None or status.state == state)]


@router.get("/jobs/last")
def last_jobs(a: ApiDep, who: Who) -> dict[str, LastJob]:
    """Each pipeline's newest job and its status (list-pipeline's LAST JOB)."""
    last = jobs_of(a).last_jobs()
    readable = a.readable(who, last)
    return {name: LastJob(id=job_id, status=status) for name, (job_id, status) in last.items() if name in readable}


@router.get("/job")
def inspect_job(a: ApiDep, job: str) -> JobRow:
    info, status = jobs_of(a).inspect(job)
    return JobRow(job=info, status=status)


@router.get("/job/image")
def image_digest(a: ApiDep, job: str) -> ImageDigest:
    return ImageDigest(image=jobs_of(a).image_digest(job))


@router.get("/job/wait", response_class=NdjsonResponse, status_code=200,
            responses={200: {"content": {"application/x-ndjson": {}},
                             "description": '{"wait": [pipeline, done, total]} lines, then {"job": JobRow}'}})
def wait_job(a: ApiDep, job: str) -> NdjsonResponse:
    """inspect-job --block: the job once it has ended, however it ended."""
    queries = jobs_of(a)
    info, _ = queries.inspect(job)  # JobNotFound before the answer starts

    def work(events: Events) -> None:
        with _watched(a, events) as watch:
            found, status = queries.wait_job(info.id, on_wait=chain(_progress(events), watch))
        events.emit({"job": JobRow(job=found, status=status).model_dump(mode="json")})

    return ndjson(work)


@router.post("/job/stop")
def stop_job(a: ApiDep, job: str) -> None:
    a.pipelines.stop_job(job)
    a.settle()


# ---- datums ----------------------------------------------------------------------------------


@router.get("/job/datums")
def list_datums(a: ApiDep, job: str) -> JobDatums:
    job_id, rows = jobs_of(a).datums(job)
    return JobDatums(job=job_id, datums=[DatumRow(datum=d, result=r) for d, r in rows])


@router.get("/job/datum")
def inspect_datum(a: ApiDep, job: str, datum: str) -> JobDatum:
    job_id, planned, result = jobs_of(a).datum(job, datum)
    return JobDatum(job=job_id, datum=planned, result=result)


@router.post("/job/datum/restart")
def restart_datum(a: ApiDep, job: str, datum: str) -> None:
    a.pipelines.restart_datum(job, datum)
    a.settle()


# ---- logs ------------------------------------------------------------------------------------

Inputs = Annotated[list[str] | None, Query()]


@router.get("/logs/scope")
def log_scope(
    a: ApiDep, who: Who, pipeline: str | None = None, job: str | None = None, datum: str | None = None,
    inputs: Inputs = None,
) -> Scope:
    """What get-logs would read, its names resolved (unknown ones refused)."""
    scope = _readable_scope(a, who, jobs_of(a), pipeline, job, datum, inputs)
    return Scope(pipeline=scope.pipeline, job=scope.job, datum=scope.datum, inputs=list(scope.inputs))


@router.get("/logs", response_class=NdjsonResponse, status_code=200,
            responses={200: {"content": {"application/x-ndjson": {}}, "description": '{"line": LogLine} lines'}})
def get_logs(
    a: ApiDep, who: Who, pipeline: str | None = None, job: str | None = None, datum: str | None = None,
    inputs: Inputs = None, tail: Annotated[int | None, Query(ge=0)] = None, follow: bool = False,
) -> NdjsonResponse:
    """get-logs: the lines, then with `follow` new ones as they come, until the job ends (a
    pipeline's or all logs: until the client hangs up). Every pipeline's logs: only the lines
    of pipelines the user may read."""
    queries = jobs_of(a)
    scope = _readable_scope(a, who, queries, pipeline, job, datum, inputs)
    may_read: dict[str, bool] = {}

    def readable(pipeline: str) -> bool:
        if pipeline not in may_read:
            may_read[pipeline] = pipeline in a.readable(who, [pipeline])
        return may_read[pipeline]

    def work(events: Events) -> None:
        for line in queries.follow_logs(scope, tail=tail, follow=follow, poll=FOLLOW_POLL_SECONDS, gone=events.gone):
            if scope.job is not None or scope.pipeline is not None or readable(line.pipeline):
                events.emit({"line": dataclasses.asdict(line)})

    return ndjson(work)


def _readable_scope(
    a: Api, who: Principal, queries: JobQueries, pipeline: str | None, job: str | None, datum: str | None,
    inputs: list[str] | None,
) -> LogScope:
    """The scope, once the user may read the logs of its job or pipeline."""
    scope = queries.log_scope(pipeline, job, datum, inputs)
    if scope.job is not None:
        a.require(who, queries.inspect(scope.job)[0].output_repo, READER)
    elif scope.pipeline is not None:
        a.require(who, scope.pipeline, READER)
    return scope


# ---- status ----------------------------------------------------------------------------------


class ServerStatus(BaseModel):
    snapshot: dict[str, Any]
    server: dict[str, str]


@router.get("/status", tags=["server"])
def status(a: ApiDep, who: Who, jobs: bool = True) -> ServerStatus:
    """What `herd status` (`herd version`: jobs=false) observes from here: this server's storage,
    broker, schedulers, workers and running jobs (scheduler/cluster.py's Snapshot), and its version."""
    from scheduler.cli.status import observe_settings
    from scheduler.cluster import Snapshot
    from scheduler.version import herd_version

    snapshot = observe_settings(a.herd.storage_settings, a.herd.scheduler_settings, jobs)
    readable = a.readable(who, {job.pipeline for job in snapshot.jobs})
    snapshot = dataclasses.replace(snapshot, jobs=tuple(job for job in snapshot.jobs if job.pipeline in readable))
    return ServerStatus(snapshot=TypeAdapter(Snapshot).dump_python(snapshot, mode="json"),
                        server={"version": herd_version()})


# ---- flush-commit ----------------------------------------------------------------------------


@router.get("/flush", response_class=NdjsonResponse, status_code=200,
            responses={200: {"content": {"application/x-ndjson": {}},
                             "description": '{"wait": [pipeline, done, total]} lines, then {"jobs": [FlushedJob]}'}})
def flush_jobs(
    a: ApiDep, who: Who, repo: str, ref: str, timeout: Annotated[float | None, Query(ge=0)] = None,
) -> NdjsonResponse:
    """flush-commit: every job downstream of the commit, once each has ended (those the user may read)."""
    a.pfs.inspect_commit(repo, ref)  # RepoNotFound, CommitNotFound before the answer starts
    a.require(who, repo, READER)
    queries = jobs_of(a)

    def work(events: Events) -> None:
        with _watched(a, events) as watch:
            rows = queries.flush_jobs(repo, ref, timeout=timeout, on_wait=chain(_progress(events), watch))
        readable = a.readable(who, {row.job.output_repo for row in rows})
        events.emit({"jobs": [FLUSHED.dump_python(row, mode="json") for row in rows if row.job.output_repo in readable]})

    return ndjson(work)


@contextmanager
def _watched(a: Api, events: Events) -> Iterator[Callable[..., None] | None]:
    """In distributed mode the server watches its own broker while a client waits (the client
    may have no access to it) and says once, as a `{"note": ...}` line the client prints on
    stderr, that no scheduler is running (scheduler/cli/waiting.py)."""
    settings = getattr(a.herd, "scheduler_settings", None)
    if settings is None or not settings.broker:
        yield None  # embedded: the wait settles, in this process
        return
    from scheduler.cli.waiting import scheduler_probe, scheduler_watch
    from scheduler.cli.wiring import open_broker

    broker = open_broker(settings.broker, settings.queue)
    try:
        yield scheduler_watch(lambda: scheduler_probe(broker), lambda message: events.emit({"note": message}))
    finally:
        broker.close()


def _progress(events: Events) -> Any:
    """A wait's `on_wait`: stops the wait when the client has gone; sends the progress (for the
    client's bar) when it changed, at most once a WAIT_EVENT_SECONDS."""
    import time

    last: list[Any] = [None, float("-inf")]

    def on_wait(*args: Any) -> None:
        events.check()
        now = time.monotonic()
        if list(args) != last[0] and now - last[1] >= WAIT_EVENT_SECONDS:
            last[0], last[1] = list(args), now
            events.emit({"wait": list(args)})

    return on_wait
