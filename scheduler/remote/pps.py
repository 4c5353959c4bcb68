"""scheduler.pipelines.Pipelines' and scheduler.queries.JobQueries' methods the CLI calls, over
`herd serve` (scheduler/server/routes_pps.py).

Same names, arguments and return types as the local classes: pydantic records come back via
model_validate, the dataclasses (PlannedDatum, FlushedJob, LogLine) via pydantic's TypeAdapter
or their fields. The waits read the server's NDJSON answer line by line: `{"wait": [...]}`
lines feed `on_wait` (the CLI's progress bar), blank lines are the server's heartbeat, and an
`{"error": {...}}` line is raised as the error the server hit.
"""

from __future__ import annotations

import builtins
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from typing import Any

from pydantic import TypeAdapter

from scheduler.job_records import DatumResult, JobInfo, JobStatus
from scheduler.logs import LogLine
from scheduler.queries import FlushedJob, LogScope
from scheduler.records import PipelineInfo, PlannedDatum
from scheduler.remote.client import ApiClient, rebuild
from scheduler.remote.pfs import many, one
from storage.errors import HerdError
from storage.model import Commit

OnWait = Callable[[str, int, int], None] | None


def planned_from_dict(data: Any) -> PlannedDatum:
    """A PlannedDatum from its JSON form (the server's model_dump of it)."""
    return TypeAdapter(PlannedDatum).validate_python(data)


def planned_to_dict(datum: PlannedDatum) -> dict[str, Any]:
    return TypeAdapter(PlannedDatum).dump_python(datum, mode="json")  # type: ignore[no-any-return]


def _result(data: Any) -> DatumResult | None:
    return None if data is None else DatumResult.model_validate(data)


def _log_line(data: dict[str, Any]) -> LogLine:
    names = {f.name for f in fields(LogLine)}
    return LogLine(**{key: value for key, value in data.items() if key in names})


def _pipeline_segment(name: str) -> str:
    """A pipeline name as a path segment; a name that could not be one is refused here, as the
    server would refuse it (PipelineNotFound: no pipeline has such a name), not sent as a URL."""
    from storage.errors import PipelineNotFound
    from storage.paths import validate_name
    from storage.errors import InvalidName

    try:
        validate_name(name, "pipeline")
    except InvalidName:
        raise PipelineNotFound(name) from None
    return f"/pipelines/{name}"


class RemotePipelines:
    def __init__(self, client: ApiClient) -> None:
        self.client = client

    def create(self, raw: dict[str, Any], update: bool = False, reprocess: bool = False) -> PipelineInfo:
        return self.apply([raw], update=update, reprocess=reprocess)[0]

    def apply(
        self, raws: Sequence[dict[str, Any]], update: bool = False, reprocess: bool = False
    ) -> list[PipelineInfo]:
        """The specs as JSON objects one after another: the server validates them as a whole
        and applies all or none. A spec that is not valid is refused here first, with the
        message the server (and a local create) would give."""
        from scheduler.spec import parse_spec

        for raw in raws:
            parse_spec(raw)
        body = "\n".join(json.dumps(raw, ensure_ascii=False) for raw in raws).encode()
        with self.client.stream("POST", "/pipelines", params={"update": update, "reprocess": reprocess},
                                content=[body], headers={"content-type": "application/x-ndjson"}) as answer:
            data = json.loads(answer.read())
        return many(PipelineInfo, data)

    def inspect(self, name: str) -> PipelineInfo:
        return one(PipelineInfo, self.client.call("GET", _pipeline_segment(name)))

    def list(self) -> builtins.list[PipelineInfo]:
        return many(PipelineInfo, self.client.call("GET", "/pipelines"))

    def set_stopped(self, name: str, stopped: bool) -> PipelineInfo:
        verb = "stop" if stopped else "start"
        return one(PipelineInfo, self.client.call("POST", f"{_pipeline_segment(name)}/{verb}"))

    def delete(self, name: str, keep_repo: bool = False) -> None:
        self.client.call("DELETE", _pipeline_segment(name), params={"keep_repo": keep_repo})

    def restart_datum(self, job: str, key: str) -> None:
        self.client.call("POST", "/job/datum/restart", params={"job": job, "datum": key})

    def stop_job(self, job_id: str) -> None:
        self.client.call("POST", "/job/stop", params={"job": job_id})


class RemoteJobs:
    """`say` prints what the server says while it waits (no scheduler running: its broker)."""

    def __init__(self, client: ApiClient, say: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.say = say or (lambda message: print(message, file=sys.stderr, flush=True))

    def list(self, pipeline: str | None = None) -> builtins.list[tuple[JobInfo, JobStatus]]:
        rows = self.client.call("GET", "/jobs", params={"pipeline": pipeline})
        return [(JobInfo.model_validate(r["job"]), JobStatus.model_validate(r["status"])) for r in rows]

    def inspect(self, job: str) -> tuple[JobInfo, JobStatus]:
        row = self.client.call("GET", "/job", params={"job": job})
        return JobInfo.model_validate(row["job"]), JobStatus.model_validate(row["status"])

    def image_digest(self, job: str) -> str | None:
        image = self.client.call("GET", "/job/image", params={"job": job})["image"]
        return None if image is None else str(image)

    def last_jobs(self) -> dict[str, tuple[str, JobStatus]]:
        rows = self.client.call("GET", "/jobs/last")
        return {name: (str(row["id"]), JobStatus.model_validate(row["status"])) for name, row in rows.items()}

    def datums(self, job: str) -> tuple[str, builtins.list[tuple[PlannedDatum, DatumResult | None]]]:
        answer = self.client.call("GET", "/job/datums", params={"job": job})
        return str(answer["job"]), [(planned_from_dict(r["datum"]), _result(r["result"])) for r in answer["datums"]]

    def datum(self, job: str, datum: str) -> tuple[str, PlannedDatum, DatumResult | None]:
        answer = self.client.call("GET", "/job/datum", params={"job": job, "datum": datum})
        return str(answer["job"]), planned_from_dict(answer["datum"]), _result(answer["result"])

    # ---- logs ------------------------------------------------------------------------------

    def log_scope(
        self, pipeline: str | None, job: str | None, datum: str | None, inputs: builtins.list[str] | None = None,
    ) -> LogScope:
        params = {"pipeline": pipeline, "job": job, "datum": datum, "inputs": inputs or None}
        answer = self.client.call("GET", "/logs/scope", params=params)
        return LogScope(answer["pipeline"], answer["job"], answer["datum"], tuple(answer["inputs"]))

    def follow_logs(
        self, scope: LogScope, tail: int | None = None, follow: bool = False, poll: float = 0.5,
        gone: Callable[[], bool] | None = None,
    ) -> Iterator[LogLine]:
        """The lines as the server sends them (`poll` is the server's; `gone`: closing the
        iterator hangs up, which the server notices)."""
        params = {"pipeline": scope.pipeline, "job": scope.job, "datum": scope.datum,
                  "inputs": list(scope.inputs) or None, "tail": tail, "follow": follow}
        for event in self._events("/logs", params, None):
            if "line" in event:
                yield _log_line(event["line"])
            if gone is not None and gone():
                return

    # ---- waits -----------------------------------------------------------------------------

    def wait_job(self, job: str, poll: float = 0.2, on_wait: OnWait = None) -> tuple[JobInfo, JobStatus]:
        for event in self._events("/job/wait", {"job": job}, on_wait):
            if "job" in event:
                row = event["job"]
                return JobInfo.model_validate(row["job"]), JobStatus.model_validate(row["status"])
        raise self._cut_short("/job/wait")

    def flush_commit(
        self, repo: str, ref: str, timeout: float | None = None, poll: float = 0.2, on_wait: OnWait = None,
    ) -> builtins.list[Commit]:
        return [row.output for row in self.flush_jobs(repo, ref, timeout, poll, on_wait) if row.output is not None]

    def flush_jobs(
        self, repo: str, ref: str, timeout: float | None = None, poll: float = 0.2, on_wait: OnWait = None,
    ) -> builtins.list[FlushedJob]:
        adapter = TypeAdapter(FlushedJob)
        for event in self._events("/flush", {"repo": repo, "ref": ref, "timeout": timeout}, on_wait):
            if "jobs" in event:
                return [adapter.validate_python(row) for row in event["jobs"]]
        raise self._cut_short("/flush")

    def _events(self, path: str, params: dict[str, Any], on_wait: OnWait) -> Iterator[dict[str, Any]]:
        """The NDJSON answer's events, heartbeats skipped, progress handed to `on_wait`, an
        error line raised as its HerdError."""
        with self.client.stream("GET", path, params=params) as answer:
            for text in answer.iter_lines():
                if not text.strip():
                    continue  # the server's heartbeat
                try:
                    event = json.loads(text)
                except ValueError:
                    raise HerdError(f"herd server at {self.client.address} answered {path} with a line "
                                    "that is not JSON") from None
                if "error" in event:
                    detail = event["error"]
                    raise rebuild(str(detail["type"]), str(detail["message"]), int(detail["exit_code"]))
                if "wait" in event:
                    if on_wait is not None:
                        on_wait(*event["wait"])
                    continue
                if "note" in event:
                    self.say(str(event["note"]))
                    continue
                yield event

    def _cut_short(self, path: str) -> HerdError:
        from storage.errors import Unavailable

        return Unavailable(f"herd server at {self.client.address} ended its answer to {path} before the result")
