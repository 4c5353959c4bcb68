"""The scheduler's Prometheus metrics (HERD_METRICS_PORT), defined here and counted by one-line
calls in the reconcile loop (scheduler/loop.py) and the service (scheduler/service.py).

The embedded CLI runs the same loop: until `serve` (or `enable`, in tests) is called, every call
here does nothing and prometheus_client is not even imported, so a laptop install without the
cluster extra never needs it. The workers' metrics are worker/metrics.py; Prometheus adds up
the two sides (a datum the scheduler fails, its tries used up, counts in herd_datums_failed_total
of the scheduler, one a worker fails in that worker's).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from storage.errors import HerdError, InvalidArgument, MissingPackage

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

PASS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class SchedulerMetrics:
    """Every metric of `herd scheduler`, registered in one registry."""

    def __init__(self, registry: CollectorRegistry, queue_depth: Callable[[], int] | None = None) -> None:
        from prometheus_client import Counter as PromCounter
        from prometheus_client import Gauge, Histogram

        self.reconcile = Histogram(
            "herd_reconcile_pass_seconds", "Duration of one pass of the scheduler's reconcile loop.",
            buckets=PASS_BUCKETS, registry=registry,
        )
        self.jobs = Gauge("herd_jobs", "Jobs the scheduler has seen, by pipeline and state.", ["pipeline", "state"],
                          registry=registry)
        self.skipped = PromCounter("herd_datums_skipped", "Datums skipped (an earlier job's result reused), by pipeline.",
                                   ["pipeline"], registry=registry)
        self.failed = PromCounter("herd_datums_failed",
                                  "Datums the scheduler failed (tries used up, lost attempts), by pipeline.",
                                  ["pipeline"], registry=registry)
        self.queue = Gauge("herd_queue_depth", "Datum batches waiting in the broker's queue (read at each scrape).",
                           registry=registry)
        if queue_depth is not None:
            self.queue.set_function(_never_raises(queue_depth))
        self._job_labels: set[tuple[str, str]] = set()

    def set_jobs(self, states: Iterable[tuple[str, str]]) -> None:
        counts = jobs_by_state(states)
        for labels in self._job_labels - set(counts):
            self.jobs.labels(*labels).set(0)  # a state no job is in any more reads 0, not its old count
        for labels, count in counts.items():
            self.jobs.labels(*labels).set(count)
        self._job_labels |= set(counts)


def jobs_by_state(states: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """(pipeline, state) of each job -> how many jobs per (pipeline, state)."""
    return dict(Counter(states))


def _never_raises(read: Callable[[], int]) -> Callable[[], float]:
    """A scrape must not fail because the broker is away: NaN says "unknown"."""

    def value() -> float:
        try:
            return float(read())
        except (HerdError, OSError):
            return math.nan

    return value


_metrics: SchedulerMetrics | None = None


def enable(registry: CollectorRegistry, queue_depth: Callable[[], int] | None = None) -> SchedulerMetrics:
    """Count from now on, into `registry` (`serve` uses the default one; tests their own)."""
    global _metrics
    _metrics = SchedulerMetrics(registry, queue_depth)
    return _metrics


def disable() -> None:
    global _metrics
    _metrics = None


def serve(port: int, queue_depth: Callable[[], int] | None = None) -> None:
    """Count, and serve the metrics on http://0.0.0.0:`port`/metrics from a daemon thread."""
    prometheus = import_prometheus()
    enable(prometheus.REGISTRY, queue_depth)
    try:
        prometheus.start_http_server(port)
    except OSError as exc:
        disable()
        raise InvalidArgument(f"HERD_METRICS_PORT={port}: the scheduler cannot serve metrics there: {exc}") from None


def import_prometheus() -> Any:
    """prometheus_client, imported only when metrics are served (both sides use this)."""
    try:
        import prometheus_client
    except ModuleNotFoundError:
        raise MissingPackage("HERD_METRICS_PORT needs the Python package 'prometheus_client', which is not "
                             "installed: pip install 'herd[cluster]'") from None
    return prometheus_client


# The hooks: one line each where the scheduler does the thing counted. ----------------------


def reconcile_pass(seconds: float) -> None:
    if _metrics is not None:
        _metrics.reconcile.observe(seconds)


def jobs(states: Iterable[tuple[str, str]]) -> None:
    """The state of every job the scheduler has seen, as (pipeline, state) pairs."""
    if _metrics is not None:
        _metrics.set_jobs(states)


def datums_skipped(pipeline: str, count: int) -> None:
    if _metrics is not None and count:
        _metrics.skipped.labels(pipeline).inc(count)


def datum_failed(pipeline: str) -> None:
    if _metrics is not None:
        _metrics.failed.labels(pipeline).inc()
