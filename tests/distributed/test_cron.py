"""Cron inputs ticked by the scheduler service, with a standby scheduler running (issue 14).

Real parts: redis-server, moto's S3 server, two `herd scheduler` processes (one active, one
standing by) and a `herd worker` running user code with the local runtime. A pipeline with
`@every 1s` ticks at least three times, each tick a commit of one new empty file and a job; the
standby makes none while the active one runs (the lock decides who ticks, and the tick's CAS on
the cron repo's branch would refuse a second commit of the same time anyway). When the active
scheduler is SIGKILLed the standby takes over and the ticks go on from the last one in storage.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.cron import parse_tick_name
from scheduler.job_records import JobState
from tests.distributed.conftest import Cluster, make_cluster
from tests.fixtures.redis import RedisServer
from tests.fixtures.s3 import MotoServer

STAMP = {
    "pipeline": {"name": "stamp"},
    "transform": {"cmd": ["sh", "-c", "ls /pfs/tick > /pfs/out/seen"]},
    "input": {"cron": {"name": "tick", "spec": "@every 1s"}},
}


@pytest.fixture
def local_cluster(moto_server: MotoServer, redis_server: RedisServer, tmp_path: Path) -> Iterator[Cluster]:
    """A cluster whose workers run user code as local processes (no Docker engine needed)."""
    cluster = make_cluster(moto_server, redis_server, "busybox", tmp_path)
    cluster.env["HERD_RUNTIME"] = "local"
    yield cluster
    cluster.stop_all()


def tick_files(cluster: Cluster, ref: str = "master") -> list[str]:
    try:
        return sorted(f.path for f in cluster.pfs.list_file("stamp_tick", ref))
    except Exception:  # noqa: BLE001 - no tick yet: the branch does not exist
        return []


def successes(cluster: Cluster) -> int:
    return sum(1 for _, status in cluster.jobs.list("stamp") if status.state is JobState.JOB_SUCCESS)


def check_each_tick_committed_once(cluster: Cluster) -> list[str]:
    # The files are read at the newest commit listed, not at the branch: a tick landing between
    # the two reads would otherwise count as a commit that added nothing.
    commits = cluster.pfs.list_commits("stamp_tick", "master")
    files = tick_files(cluster, commits[0].id)
    times = [parse_tick_name(path[1:]) for path in files]
    assert all(t is not None for t in times)
    # One commit per tick, each adding one file named by a later time: never the same tick twice.
    assert len(commits) == len(files), (files, [c.id for c in commits])
    assert all(a < b for a, b in zip(times, times[1:]))  # type: ignore[operator]
    return files


def test_cron_ticks_three_times_with_a_standby_and_goes_on_after_failover(local_cluster: Cluster) -> None:
    cluster = local_cluster
    active = cluster.scheduler("active")
    cluster.wait_for(lambda: ": active" in active.output(), "the first scheduler to take the lock")
    standby = cluster.start("standby", "scheduler")
    worker = cluster.worker("w1")
    cluster.wait_ready(worker)

    # When a pipeline with an @every 1s cron input is created
    cluster.pipelines.create(STAMP)

    # Then the active scheduler ticks it at least three times, and each tick runs a job
    cluster.wait_for(lambda: successes(cluster) >= 3, "three successful cron jobs", timeout=120)
    # Read before the ticks: any tick a job saw is in the tick repo by then, and ticks only add files.
    seen = cluster.pfs.open_file("stamp", "master", "/seen").read().decode().split()
    files = check_each_tick_committed_once(cluster)
    assert len(files) >= 3
    assert "ticked" in active.output() and "ticked" not in standby.output(), cluster.diagnose("who ticked")
    assert len(seen) >= 3 and all(f"/{name}" in files for name in seen)

    # When the active scheduler is SIGKILLed, the standby takes over and ticks on
    before = len(tick_files(cluster))
    active.kill()
    cluster.wait_for(lambda: "ticked" in standby.output(), "the standby to tick", timeout=60)
    cluster.wait_for(lambda: len(tick_files(cluster)) >= before + 3, "three more ticks", timeout=60)
    check_each_tick_committed_once(cluster)
    states = {status.state for _, status in cluster.jobs.list("stamp")}
    assert states <= {JobState.JOB_SUCCESS, JobState.JOB_STARTING, JobState.JOB_RUNNING}, states
