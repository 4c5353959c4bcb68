"""Prometheus metrics of a real cluster (issue 11): `herd scheduler` and two `herd worker
--concurrency 2` on redis-server and moto's S3, each serving HERD_METRICS_PORT. After a job of
many datums, the workers' totals scraped over HTTP equal inspect-job's counters and the results
each worker stored (every pool process counted: prometheus-client's multiprocess mode), and the
scheduler's endpoint shows jobs by state, the queue depth and its reconcile passes.
"""

from __future__ import annotations

import urllib.request
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scheduler.job_records import JobState
from tests.distributed.conftest import Cluster, byte_job, results_of
from tests.fixtures.services import free_port, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.s3, pytest.mark.docker, pytest.mark.slow]


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an endpoint: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (n, lab), value in samples.items() if n == name and wanted <= set(lab))


def answers(port: int) -> bool:
    scrape(port)
    return True


def test_worker_totals_equal_inspect_job_under_concurrency_2(cluster: Cluster) -> None:
    # Given a scheduler and two workers of two processes each, every one serving metrics
    ports = {"scheduler": free_port(), "w1": free_port(), "w2": free_port()}
    cluster.start("scheduler", "scheduler", HERD_METRICS_PORT=str(ports["scheduler"]))
    workers = [cluster.start(name, "worker", "--concurrency", "2", HERD_WORKER_ID=name,
                             HERD_METRICS_PORT=str(ports[name])) for name in ("w1", "w2")]
    cluster.wait_ready(*workers)
    for name, port in ports.items():
        assert wait_until(lambda: answers(port), timeout=30), cluster.diagnose(f"{name}'s metrics do not answer")
    # When a job of 48 datums runs (each long enough that all four processes take batches)
    job = byte_job("many", "rot", 48)
    cluster.pfs.create_repo("many")
    commit = cluster.put("many", job.inputs())
    cluster.pipelines.create(job.spec(cluster.image, sleep=0.2))
    cluster.flush("many", commit, timeout=240)
    info, status = cluster.last_job("rot")
    assert (status.state, status.data_processed) == (JobState.JOB_SUCCESS, 48)

    # Then each worker's endpoint counts exactly the results it stored, whichever process ran them
    stored = Counter(result.worker for result in results_of(cluster.pfs, info.id))
    scraped = {name: scrape(ports[name]) for name in ("w1", "w2")}
    processed = {name: total(s, "herd_datums_processed_total", pipeline="rot") for name, s in scraped.items()}
    assert processed == {name: float(stored[name]) for name in ("w1", "w2")}, (processed, stored)
    # And summed over the workers, they are inspect-job's counters
    assert sum(processed.values()) == status.data_processed == 48
    assert sum(total(s, "herd_datums_failed_total") for s in scraped.values()) == status.data_failed == 0
    assert sum(total(s, "herd_datum_seconds_count", pipeline="rot") for s in scraped.values()) == 48
    downloaded = sum(total(s, "herd_downloaded_bytes_total", pipeline="rot") for s in scraped.values())
    uploaded = sum(total(s, "herd_uploaded_bytes_total", pipeline="rot") for s in scraped.values())
    assert downloaded == status.stats.download_bytes > 0 and uploaded == status.stats.upload_bytes > 0
    # And no slot is busy once the job is over
    assert all(total(s, "herd_worker_busy_slots") == 0 for s in scraped.values())

    # And the scheduler's endpoint shows the job by state, the queue and its passes
    def scheduler_saw_success() -> bool:
        return total(scrape(ports["scheduler"]), "herd_jobs", pipeline="rot", state="JOB_SUCCESS") == 1

    assert wait_until(scheduler_saw_success, timeout=30), cluster.diagnose("no JOB_SUCCESS in the scheduler's metrics")
    samples = scrape(ports["scheduler"])
    assert total(samples, "herd_jobs", pipeline="rot", state="JOB_RUNNING") == 0
    assert ("herd_queue_depth", ()) in samples and samples[("herd_queue_depth", ())] == 0
    assert total(samples, "herd_reconcile_pass_seconds_count") > 0


def test_a_taken_metrics_port_stops_the_worker_naming_it(cluster: Cluster) -> None:
    # Given a port a scheduler already serves metrics on
    port = free_port()
    cluster.start("scheduler", "scheduler", HERD_METRICS_PORT=str(port))
    assert wait_until(lambda: answers(port), timeout=30), cluster.diagnose("the scheduler's metrics do not answer")
    # When a worker is told to serve on the same port
    worker = cluster.start("w1", "worker", HERD_METRICS_PORT=str(port))
    # Then it exits at once with one line naming the variable and the port
    assert wait_until(lambda: not worker.alive, timeout=60), cluster.diagnose("the worker kept running")
    assert worker.proc.returncode != 0
    assert f"HERD_METRICS_PORT={port}: the worker cannot serve metrics there" in worker.output()
    assert "Traceback" not in worker.output()
