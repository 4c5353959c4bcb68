"""Faults in the middle of a job: a worker SIGKILLed, the scheduler SIGKILLed (a standby takes
over), Redis restarted. Each time no datum is lost and every output appears exactly once.

"Exactly once" is checked on bytes: every datum copies its file to `/<name>` and appends its
name to the same path `/all`, and herd merges a path written by several datums by
concatenation in datum order, so a datum counted twice would show its name twice. Every output
file must equal, byte for byte, what an undisturbed run writes. The larger fault matrix is in
test_fault_*.py; each test here adds its row to the session's summary too.
"""

from __future__ import annotations

import pytest

from scheduler.job_records import JobState
from scheduler.store import PpsStore
from tests.distributed.conftest import Cluster, FaultMatrix, attempts_of, output_bytes

pytestmark = [pytest.mark.redis, pytest.mark.s3, pytest.mark.docker, pytest.mark.slow]

N = 24
NAMES = [f"d{i:02d}" for i in range(N)]


def slow_pipeline(cluster: Cluster, seconds: float = 0.4) -> tuple[str, str]:
    """A job of N datums of ~`seconds` each, started on the cluster; returns (job id, input commit id)."""
    cluster.pfs.create_repo("slow_in")
    commit = cluster.put("slow_in", {f"/{name}": f"{name}\n".encode() for name in NAMES})
    cluster.pipelines.create({
        "pipeline": {"name": "slow"},
        "transform": {
            "image": cluster.image,
            "cmd": ["sh", "-c", f"sleep {seconds}; cat $slow_in >> /pfs/out/all; cp $slow_in /pfs/out/"],
        },
        "input": {"pfs": {"repo": "slow_in", "glob": "/*"}},
    })
    cluster.wait_for(lambda: bool(cluster.jobs.list("slow")), "the job to be created")
    return cluster.last_job("slow")[0].id, commit.id


def results(cluster: Cluster, job_id: str) -> int:
    return len(PpsStore(cluster.pfs.objects).result_ids(job_id))


def expected_outputs() -> dict[str, bytes]:
    """What an undisturbed run writes, byte for byte."""
    return {"/all": b"".join(f"{name}\n".encode() for name in NAMES), **{f"/{n}": f"{n}\n".encode() for n in NAMES}}


def assert_every_output_once(cluster: Cluster, job_id: str, fault_matrix: FaultMatrix, fault: str) -> None:
    status = cluster.jobs.inspect(job_id)[1]
    actual = output_bytes(cluster.pfs, cluster.pfs.inspect_commit("slow", job_id))
    lines = actual.get("/all", b"").decode(errors="replace").splitlines()
    lost = sum(1 for n in NAMES if n not in lines or actual.get(f"/{n}") != f"{n}\n".encode())
    duplicated = len(lines) - len(set(lines))
    verdict = "bytes equal" if actual == expected_outputs() else "BYTES DIFFER"
    fault_matrix.add(fault, N, lost, duplicated, f"{status.state.value}, {verdict}")
    assert (status.state, status.data_processed, status.data_failed) == (JobState.JOB_SUCCESS, N, 0), status
    assert actual == expected_outputs()
    assert cluster.pfs.inspect_commit("slow", "master").id == job_id


def job_in_the_middle(cluster: Cluster, seconds: float = 0.4) -> tuple[str, str]:
    """Start the slow job and wait until some, but not all, of its datums have results."""
    job_id, commit_id = slow_pipeline(cluster, seconds)
    cluster.wait_for(lambda: results(cluster, job_id) >= 4, "a few results")
    assert results(cluster, job_id) < N, "the job ended before the fault: make datums slower"
    return job_id, commit_id


def held_by(cluster: Cluster, job_id: str, worker: str) -> str | None:
    """A datum `worker` has an attempt on and no result yet (what it holds right now), or None.
    It stops at the first one: the quicker the look, the likelier the datum is still held."""
    records = PpsStore(cluster.pfs.objects)
    plan = records.read_plan(job_id)
    done = set(records.result_ids(job_id))
    pending = (d.id for d in (plan.datums if plan else ()) if d.id not in done)
    return next((d for d in pending if any(a.worker == worker for a in attempts_of(cluster.pfs, job_id, d))), None)


def start(cluster: Cluster) -> None:
    cluster.scheduler()
    cluster.wait_ready(cluster.worker("w1"), cluster.worker("w2"))


def test_worker_killed_mid_job_loses_no_datum(cluster: Cluster, fault_matrix: FaultMatrix) -> None:
    # Given a job running on two workers
    start(cluster)
    # (datums of 2 s: the look below takes a while on a loaded machine, and w1 must still hold
    # the datum it was seen holding when the kill lands, or nothing is recovered to check)
    job_id, commit_id = job_in_the_middle(cluster, seconds=2.0)
    cluster.wait_for(lambda: held_by(cluster, job_id, "w1") is not None, "w1 to hold a datum")

    # When one worker is SIGKILLed with its pool process (and its datum's container)
    w1 = next(s for s in cluster.services if s.name == "w1")
    w1.kill()
    held_at_death = held_by(cluster, job_id, "w1")  # w1 is dead: what it holds now, it held when it died

    # Then the other worker finishes the job, and every datum's output is there once
    cluster.flush("slow_in", cluster.pfs.inspect_commit("slow_in", commit_id), timeout=120)
    assert_every_output_once(cluster, job_id, fault_matrix, "worker SIGKILLed (1 of 2)")

    # And recovery was tested: w1 held a datum when it died, and w2 finished it in a second attempt
    records = PpsStore(cluster.pfs.objects)
    plan = records.read_plan(job_id)
    assert plan is not None
    attempts = {d.id: attempts_of(cluster.pfs, job_id, d.id) for d in plan.datums}
    taken_over = [
        d for d, tried in attempts.items()
        if any(a.worker == "w1" for a in tried) and (r := records.read_result(job_id, d)) is not None
        and r.worker == "w2" and r.attempt > 1
    ]
    assert held_at_death is not None, f"w1 ended its datum before the kill landed: {attempts}"
    assert held_at_death in taken_over, f"w1's datum {held_at_death} was not taken over: {attempts}"
    assert any(sum(1 for a in attempts[d] if a.counts) > 1 for d in taken_over)


def test_scheduler_killed_mid_job_standby_takes_over(cluster: Cluster, fault_matrix: FaultMatrix) -> None:
    # Given an active scheduler, a second one standing by, and a job running
    start(cluster)
    standby = cluster.scheduler("standby")
    cluster.wait_for(lambda: "waiting for its lock" in standby.output(), "the second scheduler to stand by")
    job_id, commit_id = job_in_the_middle(cluster)

    # When the active scheduler is SIGKILLed
    active = next(s for s in cluster.services if s.name == "scheduler")
    active.kill()

    # Then the standby takes the lock, rebuilds its view from storage and finishes the job
    cluster.flush("slow_in", cluster.pfs.inspect_commit("slow_in", commit_id), timeout=120)
    assert "took the scheduler lock" in standby.output()
    assert_every_output_once(cluster, job_id, fault_matrix, "scheduler SIGKILLed, standby (24 datums)")
    # And nothing ran twice: every datum has a single attempt
    records = PpsStore(cluster.pfs.objects)
    plan = records.read_plan(job_id)
    assert plan is not None
    assert {len(records.attempts(job_id, d.id)) for d in plan.datums} == {1}


def test_redis_restarted_mid_job_loses_no_datum(cluster: Cluster, fault_matrix: FaultMatrix) -> None:
    # Given a job running (Redis keeps its queue in an append-only file)
    start(cluster)
    job_id, commit_id = job_in_the_middle(cluster)

    # When Redis shuts down and starts again on the same port
    cluster.redis.restart()

    # Then workers and scheduler reconnect, lost runs are redelivered, and the job completes once
    cluster.flush("slow_in", cluster.pfs.inspect_commit("slow_in", commit_id), timeout=120)
    assert_every_output_once(cluster, job_id, fault_matrix, "Redis restarted (SIGTERM, AOF flushed)")
