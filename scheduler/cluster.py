"""What `herd status` and `herd version` say, from an observed snapshot: pure, no I/O.

scheduler/cli/status.py observes (storage, the broker's Redis, heartbeats of scheduler/heartbeat.py,
running jobs) into a `Snapshot`; `status_report` and `version_report` turn it into rows, JSON,
and the problems that make `herd status` exit non-zero. A heartbeat older than its own window
(the writer's HERD_HEARTBEAT_SECONDS × scheduler/heartbeat.py MISSES) is a process that is gone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

STATUS_HEADERS = ("KIND", "NAME", "STATE", "DETAIL")
DEFAULT_WINDOW = 6.0  # a record without its window (never written by herd): judged by this


def redact_url(url: str) -> str:
    """A URL without its password (an endpoint may carry `user:secret@`): never shown."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class Probe:
    """A dependency as observed: where it is (no credentials) and the error when it did not answer."""

    where: str
    error: str | None = None

    @property
    def up(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class RunningJob:
    pipeline: str
    job_id: str
    state: str  # JOB_STARTING, JOB_RUNNING
    processed: int
    skipped: int
    failed: int
    total: int


@dataclass(frozen=True)
class Snapshot:
    """Everything `herd status` looked at, at one moment (`now`, on the broker's clock when it answered)."""

    now: float
    storage: Probe
    broker: Probe | None = None  # None: embedded mode (HERD_BROKER unset)
    queue: str = "herd"
    queue_depth: int | None = None
    active: str | None = None  # the scheduler lock's holder token
    schedulers: tuple[dict[str, Any], ...] = ()
    workers: tuple[dict[str, Any], ...] = ()
    jobs: tuple[RunningJob, ...] = ()
    storage_format: int | None = None
    reads_up_to: int | None = None  # the newest storage format this herd reads


@dataclass
class Report:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def rfc3339(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):  # a record from a confused clock: shown, not fatal
        return "?"


def _number(value: Any, default: float = 0.0) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _count(value: Any) -> int:
    number = _number(value)
    return int(number) if math.isfinite(number) else 0


def age(record: dict[str, Any], now: float) -> float:
    """Seconds since the record's last beat (never negative: clocks are one, but reads race)."""
    return max(0.0, now - _number(record.get("heartbeat"), float("-inf")))


def alive(record: dict[str, Any], now: float) -> bool:
    return age(record, now) <= _number(record.get("window"), DEFAULT_WINDOW)


def _ago(seconds: float) -> str:
    if seconds == float("inf"):
        return "never"
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def _scheduler_state(record: dict[str, Any], snapshot: Snapshot) -> str:
    if not alive(record, snapshot.now):
        return "gone"
    return "active" if record.get("name") == snapshot.active else "standby"


def _scheduler(record: dict[str, Any], snapshot: Snapshot) -> dict[str, Any]:
    seconds = age(record, snapshot.now)
    return {
        "name": str(record.get("name", "?")), "state": _scheduler_state(record, snapshot),
        "host": str(record.get("host", "?")), "pid": record.get("pid"), "version": record.get("version"),
        "since": rfc3339(_number(record.get("since"), 0.0) or None),
        "last_heartbeat": rfc3339(_number(record.get("heartbeat"), 0.0) or None),
        "heartbeat_age_seconds": round(seconds, 3) if seconds != float("inf") else None,
    }


def _worker(record: dict[str, Any], snapshot: Snapshot) -> dict[str, Any]:
    seconds = age(record, snapshot.now)
    return {
        "name": str(record.get("name", "?")), "state": "up" if alive(record, snapshot.now) else "gone",
        "node": record.get("node"), "host": str(record.get("host", "?")), "pid": record.get("pid"),
        "concurrency": record.get("concurrency"), "runtime": record.get("runtime"),
        "datums_done": _count(record.get("datums_done")), "version": record.get("version"),
        "last_heartbeat": rfc3339(_number(record.get("heartbeat"), 0.0) or None),
        "heartbeat_age_seconds": round(seconds, 3) if seconds != float("inf") else None,
    }


def _age_text(entry: dict[str, Any]) -> str:
    seconds = entry["heartbeat_age_seconds"]
    return f"heartbeat {_ago(float('inf') if seconds is None else seconds)}"


def _newer(found: int | None, reads: int | None) -> bool:
    return found is not None and reads is not None and found > reads


def status_report(snapshot: Snapshot) -> Report:
    """The rows, JSON and problems of `herd status` for a snapshot.

    Problems (a non-zero exit) are what the mode needs and lacks: storage in both; in
    distributed mode also the broker, a live active scheduler, and at least one live worker."""
    report = Report()
    storage = snapshot.storage
    fmt = f"format {snapshot.storage_format}" if snapshot.storage_format is not None else ""
    report.rows.append(("storage", storage.where, "up" if storage.up else "down", storage.error or fmt))
    if not storage.up:
        report.problems.append(f"storage {storage.where} is unreachable: {storage.error}")
    elif _newer(snapshot.storage_format, snapshot.reads_up_to):
        report.problems.append(f"storage {storage.where} has format {snapshot.storage_format}, newer than this herd "
                               f"reads (format {snapshot.reads_up_to}): upgrade herd")
    raw: dict[str, Any] = {
        "mode": "distributed" if snapshot.broker is not None else "embedded",
        "storage": {"where": storage.where, "up": storage.up, "error": storage.error,
                    "format": snapshot.storage_format},
    }
    if snapshot.broker is not None:
        _distributed(snapshot, snapshot.broker, report, raw)
    jobs = []
    for job in snapshot.jobs:
        progress = f"{job.processed} + {job.skipped} / {job.total} datums" + (f", {job.failed} failed" if job.failed else "")
        state = job.state.removeprefix("JOB_").lower()
        report.rows.append(("job", f"{job.pipeline}/{job.job_id}", state, progress))
        jobs.append({"pipeline": job.pipeline, "job": job.job_id, "state": job.state, "data_processed": job.processed,
                     "data_skipped": job.skipped, "data_failed": job.failed, "data_total": job.total})
    raw["jobs"] = jobs
    raw["ok"] = report.ok
    raw["problems"] = list(report.problems)
    report.raw = raw
    return report


def _distributed(snapshot: Snapshot, broker: Probe, report: Report, raw: dict[str, Any]) -> None:
    depth = "?" if snapshot.queue_depth is None else str(snapshot.queue_depth)
    detail = broker.error or f"queue '{snapshot.queue}': {depth} batches waiting"
    report.rows.append(("broker", broker.where, "up" if broker.up else "down", detail))
    raw["broker"] = {"where": broker.where, "up": broker.up, "error": broker.error, "queue": snapshot.queue,
                     "queue_depth": snapshot.queue_depth}
    if not broker.up:
        report.problems.append(str(broker.error))
        raw["schedulers"], raw["workers"] = [], []
        return
    schedulers = [_scheduler(r, snapshot) for r in snapshot.schedulers]
    if snapshot.active is not None and not any(s["name"] == snapshot.active for s in schedulers):
        # The lock is held but its holder wrote no heartbeat (yet): it is alive while the lock lives.
        schedulers.append({"name": snapshot.active, "state": "active", "host": "?", "pid": None, "version": None,
                           "since": "-", "last_heartbeat": "-", "heartbeat_age_seconds": None})
    schedulers.sort(key=lambda s: ({"active": 0, "standby": 1}.get(s["state"], 2), s["name"]))
    for s in schedulers:
        detail = f"host {s['host']}, pid {s['pid']}, since {s['since']}, " + _age_text(s)
        if s["version"]:
            detail += f", version {s['version']}"
        report.rows.append(("scheduler", s["name"], s["state"], detail))
    if not any(s["state"] == "active" for s in schedulers):
        report.problems.append("no scheduler is running: start one with herd scheduler")
    workers = sorted((_worker(r, snapshot) for r in snapshot.workers), key=lambda w: (w["state"] != "up", w["name"]))
    for w in workers:
        detail = (f"host {w['host']}, concurrency {w['concurrency']}, runtime {w['runtime']}, "
                  f"{w['datums_done']} datums done, " + _age_text(w))
        if w["version"]:
            detail += f", version {w['version']}"
        report.rows.append(("worker", w["name"], w["state"], detail))
    if not any(w["state"] == "up" for w in workers):
        report.problems.append("no worker is running: start one with herd worker")
    raw["schedulers"], raw["workers"] = schedulers, workers


def version_report(client: str, snapshot: Snapshot, reads: int) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
    """`herd version`'s rows (COMPONENT NAME VERSION) and JSON: this client, the storage format
    (`reads`: the newest this herd reads), and in distributed mode each live scheduler and worker."""
    rows = [("client", "herd", client)]
    storage: dict[str, Any] = {"where": snapshot.storage.where, "format": snapshot.storage_format,
                               "reads_up_to": reads, "error": snapshot.storage.error}
    if snapshot.storage_format is not None:
        note = "" if snapshot.storage_format <= reads else f" (newer than this herd reads: {reads})"
        rows.append(("storage", snapshot.storage.where, f"format {snapshot.storage_format}{note}"))
    else:
        rows.append(("storage", snapshot.storage.where, f"unknown: {snapshot.storage.error or 'no format marker'}"))
    raw: dict[str, Any] = {"client": client, "storage": storage}
    if snapshot.broker is not None:
        if not snapshot.broker.up:
            rows.append(("broker", snapshot.broker.where, f"unreachable: {snapshot.broker.error}"))
        live_schedulers = [_scheduler(r, snapshot) for r in snapshot.schedulers if alive(r, snapshot.now)]
        live_workers = [_worker(r, snapshot) for r in snapshot.workers if alive(r, snapshot.now)]
        for s in sorted(live_schedulers, key=lambda s: s["name"]):
            rows.append(("scheduler", s["name"], str(s["version"] or "?")))
        for w in sorted(live_workers, key=lambda w: w["name"]):
            rows.append(("worker", w["name"], str(w["version"] or "?")))
        raw["schedulers"] = [{"name": s["name"], "version": s["version"], "state": s["state"], "host": s["host"],
                              "pid": s["pid"]} for s in live_schedulers]
        raw["workers"] = [{"name": w["name"], "version": w["version"], "host": w["host"], "pid": w["pid"]}
                          for w in live_workers]
    return rows, raw
