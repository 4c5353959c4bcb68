"""Fault matrix row 1: a 1,000-datum job on three workers (three pool processes each) while 10
pool processes and 3 whole workers are SIGKILLed at random moments (seeded, so a failure
replays). No datum is lost, no output is duplicated (every output file's bytes equal what an
undisturbed run writes), the job succeeds, and its restarts show in `herd inspect-job`.

The test also proves it tested recovery: a killed worker held a datum when it died (its attempt
was taken over by a later attempt), and some datum needed a second attempt.
"""

from __future__ import annotations

import os
import random
import re
import signal
from dataclasses import dataclass

import pytest

from scheduler.job_records import JobState
from scheduler.records import JobPlan
from scheduler.store import PpsStore
from tests.distributed.conftest import (
    Cluster,
    FaultMatrix,
    Service,
    attempts_by_datum,
    byte_job,
    check_outputs,
    herd_cli,
    output_bytes,
    pool_children,
    result_count,
    results_by_datum,
    start_byte_job,
)

pytestmark = [pytest.mark.redis, pytest.mark.s3, pytest.mark.docker, pytest.mark.slow]

SEED = 1743  # pachyderm#1743: restarts invisible to users
DATUMS = 1000
CONCURRENCY = 3
POOL_KILLS = 10
WORKER_KILLS = 3


@dataclass
class Kill:
    kind: str  # "pool" or "worker"
    at_results: int  # fired once the job has this many results
    target: str = ""  # the worker's name
    pid: int = 0
    results_then: int = 0


def plan_of(cluster: Cluster, job_id: str) -> JobPlan:
    plan = PpsStore(cluster.pfs.objects).read_plan(job_id)
    assert plan is not None
    return plan


def plan_kills(rng: random.Random) -> list[Kill]:
    """13 kills at random points between 5% and 85% of the job, in random order of kind."""
    kinds = ["pool"] * POOL_KILLS + ["worker"] * WORKER_KILLS
    rng.shuffle(kinds)
    moments = sorted(rng.sample(range(DATUMS // 20, DATUMS * 85 // 100), len(kinds)))
    return [Kill(kind, at) for kind, at in zip(kinds, moments)]


def kill_pool_process(cluster: Cluster, workers: list[Service], kill: Kill, rng: random.Random) -> None:
    worker = rng.choice(workers)
    cluster.wait_for(lambda: len(pool_children(worker)) == CONCURRENCY, f"{worker.name}'s pool to be full")
    kill.target, kill.pid = worker.name, rng.choice(pool_children(worker))
    os.kill(kill.pid, signal.SIGKILL)


def kill_worker(cluster: Cluster, workers: list[Service], kill: Kill, rng: random.Random, number: int) -> None:
    worker = rng.choice(workers)
    kill.target, kill.pid = worker.name, worker.proc.pid
    worker.kill()
    workers.remove(worker)
    replacement = cluster.worker(f"w{number}", concurrency=CONCURRENCY)
    workers.append(replacement)
    cluster.wait_ready(replacement)


def test_pool_processes_and_workers_killed_lose_and_duplicate_no_datum(
    cluster: Cluster, fault_matrix: FaultMatrix
) -> None:
    # Given a 1,000-datum job running on three workers of three pool processes each
    rng = random.Random(SEED)
    job = byte_job("many_in", "many", DATUMS)
    cluster.scheduler()
    workers = [cluster.worker(f"w{i}", concurrency=CONCURRENCY) for i in (1, 2, 3)]
    cluster.wait_ready(*workers)
    job_id, commit = start_byte_job(cluster, job)

    # When 10 pool processes and 3 whole workers are SIGKILLed at random moments of the job
    kills = plan_kills(rng)
    number = len(workers)
    for kill in kills:
        cluster.wait_for(lambda k=kill: result_count(cluster, job_id) >= k.at_results, f"{kill.at_results} results",
                         timeout=300)
        kill.results_then = result_count(cluster, job_id)
        if kill.kind == "pool":
            kill_pool_process(cluster, workers, kill, rng)
        else:
            number += 1
            kill_worker(cluster, workers, kill, rng, number)
    assert all(k.results_then < DATUMS for k in kills), f"the job ended before every kill: {kills}"

    # Then the job succeeds and every output file's bytes equal an undisturbed run's
    cluster.flush(job.input_repo, commit, timeout=600)
    status = cluster.jobs.inspect(job_id)[1]
    check = check_outputs(job, output_bytes(cluster.pfs, cluster.pfs.inspect_commit(job.pipeline, job_id)))
    fault_matrix.add_check("10 pool processes + 3 workers SIGKILLed", check, status.state.value)
    assert (status.state, status.data_processed, status.data_failed) == (JobState.JOB_SUCCESS, DATUMS, 0), status
    assert (check.lost, check.duplicated, check.extra) == (0, 0, ())
    assert check.equal

    # And the workers whose pool processes died are still up, with their pools refilled
    survivors = [w for w in workers if w.name in {k.target for k in kills if k.kind == "pool"}]
    assert all(w.alive for w in survivors), cluster.diagnose("a worker died with its pool process")
    for worker in survivors:
        cluster.wait_for(lambda w=worker: len(pool_children(w)) == CONCURRENCY, f"{worker.name}'s pool to refill")

    # And recovery really happened: a killed worker held a datum when it died, and some datum
    # needed a second attempt
    results = results_by_datum(cluster.pfs, job_id)
    assert sorted(results) == sorted(d.id for d in plan_of(cluster, job_id).datums)
    redone = [d for d, r in results.items() if r.attempt > 1]
    attempts = attempts_by_datum(cluster.pfs, job_id, redone)
    killed = {k.target for k in kills if k.kind == "worker"}
    interrupted = [d for d in redone if any(a.worker in killed and a.number < results[d].attempt for a in attempts[d])]
    assert interrupted, f"no killed worker ({sorted(killed)}) held a datum that a later attempt finished"
    retried = [d for d in redone if sum(1 for a in attempts[d] if a.counts) > 1]
    assert retried, "no datum needed a second attempt: the kills tested nothing"

    # And the restarts are visible to users (JobStatus.restart, inspect-job's Restarts)
    assert status.restart > 0, status
    shown = re.search(r"^Restarts: (\d+)$", herd_cli(cluster, "inspect-job", job_id), re.MULTILINE)
    assert shown is not None and int(shown.group(1)) == status.restart > 0
