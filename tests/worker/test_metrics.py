"""The worker's metrics hooks: which counter a stored result goes to, busy slots, bytes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import CollectorRegistry

from scheduler.job_records import DatumResult, DatumState
from worker import metrics

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def result(state: DatumState, attempt: int = 1, seconds: float = 2.0) -> DatumResult:
    return DatumResult(job_id="j", datum_id="d", datum_hash="h", state=state, attempt=attempt, started=T0,
                       finished=T0 + timedelta(seconds=seconds))


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    registry = CollectorRegistry()
    metrics.enable(registry)
    yield registry
    metrics.disable()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(("state", "attempt", "expected"), [
    (DatumState.SUCCESS, 1, "processed"),
    (DatumState.SUCCESS, 3, "processed"),  # a retry that succeeded: processed, as inspect-job counts it
    (DatumState.FAILED, 2, "failed"),
    (DatumState.RECOVERED, 3, "recovered"),  # err_cmd recovered it
])
def test_outcome(state: DatumState, attempt: int, expected: str) -> None:
    assert metrics.outcome(result(state, attempt)) == expected


def test_stored_results_fill_the_counters_and_the_histogram(registry: CollectorRegistry) -> None:
    metrics.stored("p", result(DatumState.SUCCESS))
    metrics.stored("p", result(DatumState.SUCCESS, attempt=2, seconds=40.0))
    metrics.stored("p", result(DatumState.FAILED))
    metrics.stored("p", result(DatumState.RECOVERED, attempt=3))
    metrics.transferred("p", 100, 7)
    assert value(registry, "herd_datums_processed_total", pipeline="p") == 2
    assert value(registry, "herd_datums_recovered_total", pipeline="p") == 1
    assert value(registry, "herd_datums_failed_total", pipeline="p") == 1
    assert value(registry, "herd_datum_seconds_count", pipeline="p") == 4
    assert value(registry, "herd_datum_seconds_sum", pipeline="p") == 46.0
    assert value(registry, "herd_datum_seconds_bucket", pipeline="p", le="2.5") == 3
    assert value(registry, "herd_downloaded_bytes_total", pipeline="p") == 100
    assert value(registry, "herd_uploaded_bytes_total", pipeline="p") == 7


def test_a_slot_is_busy_while_its_batch_runs_even_when_it_raises(registry: CollectorRegistry) -> None:
    with metrics.busy():
        assert value(registry, "herd_worker_busy_slots") == 1
    with pytest.raises(RuntimeError), metrics.busy():
        raise RuntimeError("outage")
    assert value(registry, "herd_worker_busy_slots") == 0
