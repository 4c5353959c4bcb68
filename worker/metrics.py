"""The workers' Prometheus metrics (HERD_METRICS_PORT), defined here and counted by one-line calls
in worker/datum.py and worker/tasks.py.

`herd worker` runs Celery's prefork pool: the datums run in forked pool processes, the HTTP
endpoint in their parent. prometheus_client's multiprocess mode adds them up: `serve` (in the
parent, before the pool forks) gives the worker a fresh folder of its own, each process writes
its values to files there, the endpoint reads them all (MultiProcessCollector), and a pool
process that stops is marked dead (`process_ended`) so its busy slots stop counting while its
totals stay. A SIGKILLed pool process cannot mark itself; its last busy value stays until the
worker restarts (the totals are right either way).

The embedded CLI runs the same datum code: until `serve` (or `enable`, in tests) every call here
does nothing and prometheus_client is not imported.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from scheduler.job_records import DatumResult, DatumState
from scheduler.metrics import import_prometheus
from storage.errors import InvalidArgument
from worker.settings import use_metrics_folder

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

DATUM_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class WorkerMetrics:
    """Every metric of `herd worker` (in multiprocess mode: one set per pool process, summed)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        by_pipeline = ["pipeline"]
        self.processed = Counter("herd_datums_processed", "Datums this worker ran to success (results it stored).",
                                 by_pipeline, registry=registry)
        self.failed = Counter("herd_datums_failed", "Datums this worker failed (user code used its last try).",
                              by_pipeline, registry=registry)
        self.recovered = Counter(
            "herd_datums_recovered",
            "Datums this worker failed whose err_cmd recovered them (inspect-job's recovered).",
            by_pipeline, registry=registry,
        )
        self.seconds = Histogram("herd_datum_seconds", "Run time of a datum's stored attempt (download, user code, "
                                 "upload).", by_pipeline, buckets=DATUM_BUCKETS, registry=registry)
        self.downloaded = Counter("herd_downloaded_bytes", "Input bytes staged for datum attempts.", by_pipeline,
                                  registry=registry)
        self.uploaded = Counter("herd_uploaded_bytes", "Output bytes collected from datum attempts.", by_pipeline,
                                registry=registry)
        self.busy = Gauge("herd_worker_busy_slots", "Pool processes running a batch now.", registry=registry,
                          multiprocess_mode="livesum")


def outcome(result: DatumResult) -> str | None:
    """Which counter a stored result goes to ('processed', 'failed', 'recovered' or None), as
    inspect-job counts it (a retry that succeeded is processed; only err_cmd recovers)."""
    return {DatumState.SUCCESS: "processed", DatumState.FAILED: "failed",
            DatumState.RECOVERED: "recovered"}.get(result.state)


_metrics: WorkerMetrics | None = None
_folder: str | None = None


def enable(registry: CollectorRegistry | None = None) -> WorkerMetrics:
    """Count from now on (tests: into their own registry; `serve`: into the shared folder)."""
    global _metrics
    import_prometheus()
    _metrics = WorkerMetrics(registry)
    return _metrics


def disable() -> None:
    global _metrics
    _metrics = None


def serve(port: int) -> str:
    """Multiprocess mode in a fresh folder, and the endpoint on http://0.0.0.0:`port`/metrics
    (a daemon thread of this process). Call it before the pool forks. Returns the folder."""
    global _folder
    _folder = tempfile.mkdtemp(prefix=f"herd-metrics-{os.getpid()}-")
    use_metrics_folder(_folder)
    atexit.register(_remove_folder, os.getpid(), _folder)
    prometheus = import_prometheus()
    from prometheus_client import multiprocess, values

    # The value class is chosen when prometheus_client is first imported: if anything imported
    # it before the folder was set, choose again so every metric made from now on is shared.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    enable(None)  # not registered: the endpoint reads the folder, not this process's registry
    registry = prometheus.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=_folder)  # type: ignore[no-untyped-call]
    try:
        prometheus.start_http_server(port, registry=registry)
    except OSError as exc:
        disable()
        raise InvalidArgument(f"HERD_METRICS_PORT={port}: the worker cannot serve metrics there: {exc}") from None
    return _folder


def _remove_folder(owner: int, folder: str) -> None:
    """At exit of the process that made the folder (pool processes inherit the hook, not the folder)."""
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


# The hooks: one line each where the worker does the thing counted. -------------------------


def stored(pipeline: str, result: DatumResult) -> None:
    """A datum result this worker stored (the create-only write it won)."""
    if _metrics is None:
        return
    kind = outcome(result)
    if kind == "processed":
        _metrics.processed.labels(pipeline).inc()
    elif kind == "failed":
        _metrics.failed.labels(pipeline).inc()
    elif kind == "recovered":
        _metrics.recovered.labels(pipeline).inc()
    if result.started is not None and result.finished is not None:
        _metrics.seconds.labels(pipeline).observe(max(0.0, (result.finished - result.started).total_seconds()))


def transferred(pipeline: str, downloaded: int, uploaded: int) -> None:
    """Bytes one datum attempt staged in and collected out."""
    if _metrics is not None:
        _metrics.downloaded.labels(pipeline).inc(downloaded)
        _metrics.uploaded.labels(pipeline).inc(uploaded)


@contextmanager
def busy() -> Iterator[None]:
    """Around a batch: this pool process is a busy slot meanwhile."""
    if _metrics is None:
        yield
        return
    _metrics.busy.inc()
    try:
        yield
    finally:
        _metrics.busy.dec()


def process_ended() -> None:
    """A pool process stops: its live values (busy slots) leave the sum; its totals stay."""
    if _metrics is not None and _folder is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), _folder)  # type: ignore[no-untyped-call]
