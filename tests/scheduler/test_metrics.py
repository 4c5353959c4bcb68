"""The scheduler's Prometheus metrics, and the workers' counted through the same datum code the
embedded default runs: a real reconcile loop over a local folder, each side's registry read."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from scheduler import metrics
from scheduler.dispatch_celery import batch_label
from scheduler.messages import DatumBatch
from scheduler.pipelines import Pipelines
from scheduler.queries import JobQueries
from storage.errors import BrokerUnavailable
from storage.local import LocalObjectStore
from storage.repos import Pfs
from tests.scheduler.pipeline_helpers import COPY_SPEC, copy_pipeline, run_to_end
from worker import metrics as worker_metrics

ROOT = Path(__file__).resolve().parents[2]
@pytest.fixture
def registries() -> Iterator[tuple[CollectorRegistry, CollectorRegistry]]:
    scheduler_side, worker_side = CollectorRegistry(), CollectorRegistry()
    metrics.enable(scheduler_side)
    worker_metrics.enable(worker_side)
    yield scheduler_side, worker_side
    metrics.disable()
    worker_metrics.disable()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_metrics_of_two_jobs_equal_their_inspect_job_counters(
    tmp_path: Path, registries: tuple[CollectorRegistry, CollectorRegistry],
) -> None:
    scheduler_side, worker_side = registries
    # Given a pipeline over 5 files, then a second commit adding one (5 datums skipped)
    pfs = copy_pipeline(tmp_path / "store")
    run_to_end(pfs)
    pfs.put_files("in", "master", [("/f5", b"five\n")])
    # When the scheduler loop and the worker code run both jobs
    run_to_end(pfs)
    # Then the counters are inspect-job's, added over the jobs
    statuses = [status for _, status in JobQueries(pfs).list("copy")]
    assert len(statuses) == 2
    assert value(worker_side, "herd_datums_processed_total", pipeline="copy") == sum(s.data_processed for s in statuses) == 6
    assert value(scheduler_side, "herd_datums_skipped_total", pipeline="copy") == sum(s.data_skipped for s in statuses) == 5
    assert value(worker_side, "herd_datums_failed_total", pipeline="copy") == 0
    assert value(worker_side, "herd_datum_seconds_count", pipeline="copy") == 6
    assert value(worker_side, "herd_downloaded_bytes_total", pipeline="copy") == sum(s.stats.download_bytes for s in statuses)
    assert value(worker_side, "herd_uploaded_bytes_total", pipeline="copy") == sum(s.stats.upload_bytes for s in statuses) > 0
    # And the last pass saw both jobs succeeded, none left running
    assert value(scheduler_side, "herd_jobs", pipeline="copy", state="JOB_SUCCESS") == 2
    assert value(scheduler_side, "herd_jobs", pipeline="copy", state="JOB_RUNNING") == 0


def test_a_failing_datum_counts_as_failed_not_processed(
    tmp_path: Path, registries: tuple[CollectorRegistry, CollectorRegistry],
) -> None:
    _, worker_side = registries
    pfs = Pfs(LocalObjectStore(tmp_path / "store"))
    pfs.create_repo("in")
    pfs.put_files("in", "master", [("/good", b"1\n"), ("/bad", b"2\n")])
    spec = {**COPY_SPEC, "transform": {"cmd": ["sh", "-c", "case $in in */bad) exit 3;; esac; cp $in /pfs/out/"]}}
    Pipelines(pfs).create(spec)
    run_to_end(pfs)
    ((_, status),) = JobQueries(pfs).list("copy")
    assert status.data_failed == 1
    assert value(worker_side, "herd_datums_failed_total", pipeline="copy") == 1
    assert value(worker_side, "herd_datums_processed_total", pipeline="copy") == status.data_processed == 1


def test_jobs_gauge_zeroes_a_state_no_job_is_in_any_more() -> None:
    registry = CollectorRegistry()
    m = metrics.SchedulerMetrics(registry)
    m.set_jobs([("p", "JOB_RUNNING"), ("p", "JOB_SUCCESS"), ("q", "JOB_SUCCESS")])
    m.set_jobs([("p", "JOB_SUCCESS"), ("p", "JOB_SUCCESS"), ("q", "JOB_SUCCESS")])
    assert value(registry, "herd_jobs", pipeline="p", state="JOB_RUNNING") == 0
    assert value(registry, "herd_jobs", pipeline="p", state="JOB_SUCCESS") == 2
    assert metrics.jobs_by_state([("p", "a"), ("p", "a"), ("q", "a")]) == {("p", "a"): 2, ("q", "a"): 1}


def test_queue_depth_is_read_at_scrape_and_unknown_while_the_broker_is_away() -> None:
    depth = [3]

    def queue_size() -> int:
        if depth[0] < 0:
            raise BrokerUnavailable("the broker at redis://127.0.0.1:1/0 is unreachable")
        return depth[0]

    registry = CollectorRegistry()
    metrics.SchedulerMetrics(registry, queue_size)
    assert value(registry, "herd_queue_depth") == 3
    depth[0] = -1
    assert math.isnan(value(registry, "herd_queue_depth"))


def test_hooks_do_nothing_until_enabled() -> None:
    metrics.disable()
    metrics.reconcile_pass(0.1)
    metrics.jobs([("p", "JOB_RUNNING")])
    metrics.datums_skipped("p", 3)
    metrics.datum_failed("p")


def test_the_embedded_path_never_imports_prometheus_client() -> None:
    # Given the modules the embedded CLI runs jobs with; When they are imported and a hook runs
    code = (
        "import sys, scheduler.loop, worker.datum, worker.metrics, scheduler.metrics\n"
        "scheduler.metrics.reconcile_pass(1.0)\n"
        "with worker.metrics.busy(): pass\n"
        "assert 'prometheus_client' not in sys.modules, 'imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    # Then prometheus_client was never loaded (a laptop install may not have it)
    assert done.returncode == 0, done.stderr


def test_batch_label_is_short_and_names_pipeline_job_and_datums() -> None:
    batch = DatumBatch(job_id="0f3c9a1b2d4e5f60718293a4b5c6d7e8", datums=tuple(range(12)))
    assert batch_label("edges", batch) == "pipeline=edges job=0f3c9a1b2d4e datums=12"
    assert batch_label(None, batch) == "job=0f3c9a1b2d4e datums=12"
