"""Pipelines, jobs and datums → table rows and JSON dicts with Pachyderm's field names. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from scheduler.job_records import DatumResult, JobInfo, JobStats, JobStatus
from scheduler.records import PipelineInfo, PlannedDatum
from scheduler.render import NONE, ago, commit_raw, commit_ref, commit_row, duration, human_size, rfc3339

if TYPE_CHECKING:
    from storage.model import Commit

PIPELINE_HEADERS = ("NAME", "VERSION", "INPUT", "CREATED", "STATE")
JOB_HEADERS = ("ID", "PIPELINE", "STARTED", "DURATION", "RESTART", "PROGRESS", "DL", "UL", "STATE")
DATUM_HEADERS = ("ID", "STATUS", "TIME")
# flush-commit: the output commit's columns (pachctl's), then the job that made it and its state.
FLUSH_HEADERS = ("REPO", "COMMIT", "PARENT", "STARTED", "DURATION", "SIZE", "JOB", "STATE")


def input_summary(spec: dict[str, Any]) -> str:
    """`repo:/glob` per pfs input, joined the way pachctl shows cross (⨯) and union (∪)."""
    node = spec.get("input") or {}
    if not node and isinstance(spec.get("inputs"), list):  # the 1.4 form: the cross of its entries
        node = {"cross": [{"pfs": _old_entry(entry)} for entry in spec["inputs"]]}
    return _input_text(node)


def _old_entry(entry: Any) -> dict[str, Any]:
    entry = entry if isinstance(entry, dict) else {}
    repo = entry.get("repo")
    return {"repo": repo.get("name") if isinstance(repo, dict) else repo, "glob": entry.get("glob")}


def _input_text(node: dict[str, Any]) -> str:
    for key in ("pfs", "atom"):
        if key in node:
            return f"{node[key].get('repo')}:{node[key].get('glob')}"
    for key, sep in (("cross", " ⨯ "), ("union", " ∪ "), ("join", " ⋈ ")):
        if key in node:
            return "(" + sep.join(_input_text(child) for child in node[key]) + ")"
    if "group" in node:  # as Pachyderm 2.x's ShorthandInput
        return "(Group: " + ", ".join(_input_text(child) for child in node["group"]) + ")"
    return NONE


def pipeline_state(info: PipelineInfo) -> str:
    return "paused" if info.stopped else "running"


def pipeline_row(info: PipelineInfo, now: datetime) -> tuple[str, ...]:
    return (info.name, str(info.version), input_summary(info.spec), ago(info.created, now), pipeline_state(info))


def pipeline_raw(info: PipelineInfo) -> dict[str, Any]:
    return {
        "pipeline": {"name": info.name},
        "version": info.version,
        "state": "PIPELINE_PAUSED" if info.stopped else "PIPELINE_RUNNING",
        "created_at": rfc3339(info.created),
        "spec": info.spec,
        "salt": info.salt,
        "ignored_fields": list(info.ignored_fields),
    }


def progress(status: JobStatus) -> str:
    done = f"{status.data_processed} + {status.data_skipped}"
    if status.data_recovered:
        done += f" + {status.data_recovered}"
    return f"{done} / {status.data_total}"


def job_state(status: JobStatus) -> str:
    """list-job's STATE: `success`, or `failure: <25 chars of reason>...` for a job that did not succeed."""
    state = status.state.value.removeprefix("JOB_").lower()
    if status.reason and status.state.value in ("JOB_FAILURE", "JOB_UNRUNNABLE", "JOB_KILLED"):
        reason = status.reason if len(status.reason) <= 25 else status.reason[:25] + "..."
        state = f"{state}: {reason}"
    return state


def job_row(info: JobInfo, status: JobStatus, now: datetime) -> tuple[str, ...]:
    state = job_state(status)
    return (
        info.id, info.pipeline, ago(status.started or info.created, now),
        duration(status.started, status.finished or now) if status.started else "-",
        str(status.restart), progress(status), human_size(status.stats.download_bytes),
        human_size(status.stats.upload_bytes), state,
    )


def job_raw(info: JobInfo, status: JobStatus, image_digest: str | None = None) -> dict[str, Any]:
    """`image_digest`: the image id the job's datums ran (inspect-job); left out when not given."""
    raw = {
        "job": {"id": info.id},
        "pipeline": {"name": info.pipeline},
        "pipeline_version": info.pipeline_version,
        "state": status.state.value,
        "reason": status.reason,
        "started": rfc3339(status.started),
        "finished": rfc3339(status.finished),
        "restart": status.restart,
        "data_processed": status.data_processed,
        "data_skipped": status.data_skipped,
        "data_failed": status.data_failed,
        "data_recovered": status.data_recovered,
        "data_total": status.data_total,
        "stats": stats_raw(status.stats),
        "input_commits": [commit_ref(c.repo, c.id) for c in info.inputs],
        "output_commit": commit_ref(info.output_repo, status.output_commit) if status.output_commit else None,
        "failed_datums": list(status.failed_datums),
    }
    if image_digest is not None:
        raw["image_digest"] = image_digest
    return raw


def flush_row(info: JobInfo, status: JobStatus, output: Commit | None, now: datetime) -> tuple[str, ...]:
    """One downstream job of flush-commit: its output commit (`<none>` when it made none) and state."""
    commit = commit_row(output, now) if output is not None else (info.output_repo, NONE, NONE, "-", "-", "-")
    return (*commit, info.id, job_state(status))


def flush_raw(info: JobInfo, status: JobStatus, output: Commit | None) -> dict[str, Any]:
    """CommitInfo of the output (`commit` null when the job made none) plus the whole JobInfo as `job`."""
    commit = commit_raw(output) if output is not None else {"commit": None}
    return {**commit, "job": job_raw(info, status)}


def stats_raw(stats: JobStats) -> dict[str, Any]:
    """Pachyderm's `stats` object: durations as "1.234s", bytes as numbers."""
    return {
        "download_time": f"{stats.download_time:.3f}s",
        "process_time": f"{stats.process_time:.3f}s",
        "upload_time": f"{stats.upload_time:.3f}s",
        "download_bytes": stats.download_bytes,
        "upload_bytes": stats.upload_bytes,
    }


def _bytes_fields(stats: JobStats) -> list[tuple[str, Any]]:
    return [("Data Downloaded", human_size(stats.download_bytes)), ("Data Uploaded", human_size(stats.upload_bytes))]


def _time_fields(stats: JobStats) -> list[tuple[str, Any]]:
    return [
        ("Download Time", f"{stats.download_time:.3f}s"),
        ("Process Time", f"{stats.process_time:.3f}s"),
        ("Upload Time", f"{stats.upload_time:.3f}s"),
    ]


def job_fields(info: JobInfo, status: JobStatus, now: datetime, image_digest: str | None = None) -> list[tuple[str, Any]]:
    """`image_digest`: the image id the job's datums ran (none before the first datum started)."""
    return [
        ("ID", info.id), ("Pipeline", f"{info.pipeline} (version {info.pipeline_version})"),
        ("Started", ago(status.started, now) if status.started else NONE),
        ("Duration", duration(status.started, status.finished or now) if status.started else NONE),
        ("State", status.state.value), ("Reason", status.reason or NONE),
        ("Processed", status.data_processed), ("Failed", status.data_failed),
        ("Skipped", status.data_skipped), ("Recovered", status.data_recovered), ("Total", status.data_total),
        *_bytes_fields(status.stats),
        *_time_fields(status.stats),
        ("Restarts", status.restart),
        ("Input", ", ".join(f"{c.repo}@{c.id}" for c in info.inputs)),
        ("Output Commit", f"{info.output_repo}@{status.output_commit}" if status.output_commit else NONE),
        ("Failed Datums", ", ".join(status.failed_datums) or NONE),
        ("Image Digest", image_digest or NONE),
    ]


def datum_state(datum: PlannedDatum, result: DatumResult | None) -> str:
    if datum.skip:
        return "SKIPPED"
    return "STARTING" if result is None else result.state.value


def datum_row(datum: PlannedDatum, result: DatumResult | None) -> tuple[str, ...]:
    took = "-" if result is None or result.started is None else duration(result.started, result.finished)
    return (datum.id, datum_state(datum, result), took)


def datum_raw(job_id: str, datum: PlannedDatum, result: DatumResult | None) -> dict[str, Any]:
    return {
        "datum": {"id": datum.id, "job": {"id": job_id}},
        "hash": datum.hash,
        "state": datum_state(datum, result),
        "attempt": result.attempt if result else 0,
        "reason": result.reason if result else "",
        "stats": None if result is None else stats_raw(result.stats),
        "data": [
            {"file": {"commit": commit_ref(i.repo, i.commit), "path": i.path}, "name": i.name} for i in datum.inputs
        ],
    }


def datum_fields(job_id: str, datum: PlannedDatum, result: DatumResult | None) -> list[tuple[str, Any]]:
    fields: list[tuple[str, Any]] = [
        ("ID", datum.id), ("Job ID", job_id), ("State", datum_state(datum, result)),
    ]
    if result is not None:
        fields += [
            ("Attempt", result.attempt), ("Reason", result.reason or NONE),
            *_bytes_fields(result.stats),
            ("Total Time", duration(result.started, result.finished)),
            *_time_fields(result.stats),
        ]
    fields.append(("Inputs", "; ".join(f"{i.repo}@{i.commit}:{i.path}" for i in datum.inputs)))
    return fields
