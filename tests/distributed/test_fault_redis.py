"""Fault matrix row 2: Redis crashes mid-job. SIGKILLed and restarted (only what reached the
append-only file survives), and SIGKILLed with its data wiped (queue, sent marks, results
and the scheduler lock all gone: the scheduler re-sends from the plan stored in S3). Either
way no datum is lost or duplicated, the job succeeds, and every output byte equals an
undisturbed run's.
"""

from __future__ import annotations

import pytest
import redis

from scheduler.job_records import JobState
from tests.distributed.conftest import (
    Cluster,
    FaultMatrix,
    byte_job,
    check_outputs,
    output_bytes,
    result_count,
    start_byte_job,
)
from tests.fixtures.redis import RedisFactory

pytestmark = [pytest.mark.redis]

DATUMS = 40
SLEEP = 0.3  # seconds per datum, so the job is still running when Redis dies
QUEUE = "herd"  # HERD_QUEUE's default: Celery's list of waiting messages in the broker database


def test_a_wiped_restart_brings_redis_back_empty_and_a_hard_one_keeps_the_aof(redis_factory: RedisFactory) -> None:
    # Given a server that syncs every write to its append-only file
    server = redis_factory(appendfsync="always")
    with server.client() as conn:
        conn.set("kept", b"1")

    # When it is SIGKILLed and restarted, then its key is still there
    server.restart(hard=True)
    with server.client() as conn:
        assert conn.get("kept") == b"1"

    # When it is SIGKILLed, its data deleted and restarted, then it comes back empty
    server.restart(wipe=True)
    with server.client() as conn:
        assert (conn.get("kept"), conn.dbsize()) == (None, 0)


def queued(cluster: Cluster) -> int:
    """Batches waiting in the cluster's Celery queue (a Redis list named after the queue)."""
    with redis.Redis.from_url(cluster.env["HERD_BROKER"], socket_timeout=5) as conn:
        return int(conn.llen(QUEUE))


def run_through_redis_crash(cluster: Cluster, fault_matrix: FaultMatrix, fault: str, *, wipe: bool) -> None:
    # Given a job running on two workers of two pool processes each
    job = byte_job("crash_in", "crash", DATUMS)
    cluster.scheduler()
    cluster.wait_ready(cluster.worker("w1", concurrency=2), cluster.worker("w2", concurrency=2))
    job_id, commit = start_byte_job(cluster, job, sleep=SLEEP)
    cluster.wait_for(lambda: result_count(cluster, job_id) >= 6, "a few results")
    # (batches waiting in the queue, so the crash destroys some that no worker has taken yet)
    cluster.wait_for(lambda: queued(cluster) > 0, "batches waiting in the queue")
    assert result_count(cluster, job_id) < DATUMS, "the job ended before the fault: make datums slower"

    # When Redis is SIGKILLed (and, when `wipe`, comes back with no data) on the same port
    cluster.redis.restart(hard=True, wipe=wipe)

    # Then workers and scheduler reconnect, lost batches are sent again, and the job completes once
    cluster.flush(job.input_repo, commit, timeout=300)
    status = cluster.jobs.inspect(job_id)[1]
    check = check_outputs(job, output_bytes(cluster.pfs, cluster.pfs.inspect_commit(job.pipeline, job_id)))
    fault_matrix.add_check(fault, check, status.state.value)
    assert (status.state, status.data_processed, status.data_failed) == (JobState.JOB_SUCCESS, DATUMS, 0), status
    assert (check.lost, check.duplicated, check.extra) == (0, 0, ())
    assert check.equal


@pytest.mark.s3
@pytest.mark.docker
@pytest.mark.slow
def test_redis_sigkilled_mid_job_loses_no_datum(cluster: Cluster, fault_matrix: FaultMatrix) -> None:
    run_through_redis_crash(cluster, fault_matrix, "Redis SIGKILLed and restarted", wipe=False)


@pytest.mark.s3
@pytest.mark.docker
@pytest.mark.slow
def test_redis_wiped_mid_job_the_scheduler_resends_from_the_plan(cluster: Cluster, fault_matrix: FaultMatrix) -> None:
    run_through_redis_crash(cluster, fault_matrix, "Redis SIGKILLed, data wiped, restarted", wipe=True)
