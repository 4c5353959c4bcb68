"""Fault matrix rows 3 and 6: the scheduler dies.

Row 3: a `herd scheduler` started with HERD_FAILPOINTS=<point> exits (status 137, as SIGKILL
would) at each of its failpoints: after the plan is written, after the 3rd batch is sent, when
every datum has a result, inside finish (datum index written, no output commit yet), and after
the output commit (job status not yet SUCCESS). A scheduler started without failpoints then
finishes the job: it is committed exactly once (one job per input commit, one output commit
per job) with the same output bytes as an undisturbed run.

Row 6: two schedulers at once, one standing by. Never two active (the lock is sampled all
along, and the logs say who took it when); SIGKILLing the active one makes the standby take
over within the lock's lifetime plus a margin, and no job is created twice.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
import redis

from scheduler.job_records import JobState
from scheduler.store import PpsStore
from storage import failpoints
from tests.distributed.conftest import (
    FAST,
    Cluster,
    FaultMatrix,
    Service,
    byte_job,
    check_outputs,
    output_bytes,
    result_count,
    start_byte_job,
)


def on_cluster(test: Callable[..., None]) -> Callable[..., None]:
    """The marks of a test that runs a cluster (every test here but the static one)."""
    for mark in (pytest.mark.redis, pytest.mark.s3, pytest.mark.docker, pytest.mark.slow):
        test = mark(test)
    return test


ROOT = Path(__file__).resolve().parents[2]
DATUMS = 12
LOCK_SECONDS = float(FAST["HERD_LOCK_SECONDS"])
TAKEOVER_MARGIN = 3.0  # seconds beyond the lock's lifetime and one standby poll (ttl/3)

# failpoint -> what must be true in storage when the scheduler died there
FAILPOINTS = {
    "scheduler.after_plan": "planned",
    "scheduler.after_send:3": "sent",
    "scheduler.before_finish": "results",
    "scheduler.after_index": "index",
    "scheduler.after_output_commit": "output",
}


def test_every_scheduler_failpoint_is_exercised() -> None:
    """Each failpoint in the scheduler has a case here: a new step of a job's life needs a test."""
    source = "".join(path.read_text() for path in sorted((ROOT / "scheduler").rglob("*.py")))
    named = set(re.findall(r'failpoints\.hit\("(scheduler\.[^"]+)"\)', source))
    assert named == {point.partition(":")[0] for point in FAILPOINTS}


def output_commits(cluster: Cluster, repo: str) -> list[str]:
    """Ids of the job output commits in a pipeline's output repo (every branch)."""
    return [c.id for c in cluster.pfs.list_commits(repo) if c.description.startswith("output of job ")]


def assert_each_job_committed_once(cluster: Cluster, pipeline: str, input_commits: set[str]) -> list[str]:
    """One job per input commit, job ids unique, one output commit per job (its id the job's)."""
    records = PpsStore(cluster.pfs.objects)
    markers = records.job_markers(pipeline)
    assert len(markers) == len(set(markers)), f"a job id is listed twice: {markers}"
    inputs = [tuple(ref.id for ref in cluster.jobs.inspect(job_id)[0].inputs) for job_id in markers]
    assert sorted(i for (i,) in inputs) == sorted(input_commits), f"jobs per input commit: {inputs}"
    commits = output_commits(cluster, pipeline)
    assert sorted(commits) == sorted(markers), f"output commits {commits} for jobs {markers}"
    return markers


def died_where_expected(cluster: Cluster, job_id: str, stage: str) -> None:
    records = PpsStore(cluster.pfs.objects)
    plan = records.read_plan(job_id)
    assert plan is not None, "the scheduler died before the plan was stored"
    pipeline = plan.pipeline
    status = records.read_status(job_id)
    if stage == "sent":  # the batches sent before the crash still run
        cluster.wait_for(lambda: result_count(cluster, job_id) > 0, "the sent batches' results")
    results = result_count(cluster, job_id)
    if stage == "planned":
        assert results == 0, "datums ran before any was sent"
    if stage == "sent":
        assert 0 < results < DATUMS, f"{results} results after 3 sends of a {DATUMS}-datum job"
    if stage in ("results", "index", "output"):
        assert results == DATUMS
    if stage in ("planned", "sent", "results"):
        assert records.read_index(pipeline, job_id) is None
    if stage in ("index", "output"):
        assert records.read_index(pipeline, job_id) is not None
    if stage in ("planned", "sent", "results", "index"):
        assert output_commits(cluster, pipeline) == []
    if stage == "output":
        assert output_commits(cluster, pipeline) == [job_id]
    assert status is None or not status.state.terminal, f"the job ended before the crash: {status}"


@on_cluster
@pytest.mark.parametrize("point", list(FAILPOINTS))
def test_scheduler_killed_at_a_failpoint_commits_the_job_once(
    cluster: Cluster, fault_matrix: FaultMatrix, point: str
) -> None:
    # Given workers, and a scheduler that dies at `point`
    job = byte_job("fp_in", "fp", DATUMS)
    cluster.wait_ready(cluster.worker("w1", concurrency=2), cluster.worker("w2", concurrency=2))
    crashing = cluster.start("crashing", "scheduler", HERD_FAILPOINTS=point)

    # When a job runs and the scheduler dies there
    job_id, commit = start_byte_job(cluster, job, sleep=0.1)
    cluster.wait_for(lambda: not crashing.alive, f"the scheduler to die at {point}", timeout=120)
    assert crashing.proc.returncode == failpoints.EXIT_STATUS, crashing.output()[-3000:]
    died_where_expected(cluster, job_id, FAILPOINTS[point])

    # Then a scheduler without failpoints finishes it, committed once, bytes as undisturbed
    cluster.scheduler("recovering")
    cluster.flush(job.input_repo, commit, timeout=180)
    status = cluster.jobs.inspect(job_id)[1]
    check = check_outputs(job, output_bytes(cluster.pfs, cluster.pfs.inspect_commit(job.pipeline, job_id)))
    fault_matrix.add_check(f"scheduler killed at {point}", check, status.state.value)
    assert (status.state, status.data_processed, status.data_failed) == (JobState.JOB_SUCCESS, DATUMS, 0), status
    assert status.output_commit == job_id
    assert (check.lost, check.duplicated, check.extra) == (0, 0, ())
    assert check.equal
    assert_each_job_committed_once(cluster, job.pipeline, {commit.id})
    assert cluster.pfs.inspect_commit(job.pipeline, "master").id == job_id


# ---- row 6: one active scheduler of two -------------------------------------------------

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*took the scheduler lock \S+ as (\S+): active", re.M)


@dataclass
class LockSampler:
    """Reads the scheduler lock every 50 ms on a thread: (monotonic time, holder token)."""

    url: str
    key: str
    samples: list[tuple[float, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with redis.Redis.from_url(self.url, socket_timeout=5) as conn:
            while not self._stop.wait(0.05):
                holder = conn.get(self.key)
                self.samples.append((time.monotonic(), holder.decode() if holder else None))

    def __enter__(self) -> LockSampler:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def holders(self, since: float = 0.0, until: float = float("inf")) -> set[str | None]:
        return {holder for at, holder in self.samples if since <= at < until}

    def first(self, token: str) -> float | None:
        return next((at for at, holder in self.samples if holder == token), None)


def lock_takes(service: Service) -> list[tuple[datetime, str]]:
    """When this scheduler's log says it took the lock, and under which token."""
    return [(datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f"), token) for t, token in LOG_TIME.findall(service.output())]


def pid_of(token: str) -> int:
    return int(token.rsplit("-", 2)[1])  # host-pid-nonce; a host name may hold dashes


@on_cluster
def test_two_schedulers_one_active_standby_takes_over_no_job_twice(
    cluster: Cluster, fault_matrix: FaultMatrix
) -> None:
    # Given an active scheduler and a second one standing by, the lock sampled all along
    cluster.wait_ready(cluster.worker("w1", concurrency=2), cluster.worker("w2", concurrency=2))
    active = cluster.scheduler("active")
    cluster.wait_for(lambda: bool(lock_takes(active)), "the first scheduler to take the lock")
    standby = cluster.scheduler("standby")
    cluster.wait_for(lambda: "waiting for its lock" in standby.output(), "the second scheduler to stand by")
    key = "herd:herd:scheduler"  # scheduler.broker.Broker.key("scheduler") for the default queue
    job = byte_job("ha_in", "ha", 30)
    with LockSampler(cluster.env["HERD_BROKER"], key) as sampler:
        job_id, first = start_byte_job(cluster, job, sleep=0.3)
        cluster.wait_for(lambda: result_count(cluster, job_id) >= 5, "a few results")
        assert result_count(cluster, job_id) < len(job.names), "the job ended before the fault"
        assert not lock_takes(standby), "the standby took the lock while the active one held it"

        # When the active scheduler is SIGKILLed mid-job
        killed_at = time.monotonic()
        active.kill()
        cluster.wait_for(lambda: bool(lock_takes(standby)), "the standby to take the lock", timeout=60)

        # And a second input commit arrives after the takeover
        second = cluster.put(job.input_repo, {"/late": b"late: payload 0 of ha_in\n"})
        cluster.flush(job.input_repo, first, timeout=180)
        cluster.flush(job.input_repo, second, timeout=180)

    # Then only ever one scheduler held the lock: the first until it died, then the standby
    (_, active_token), = lock_takes(active)
    (_, standby_token), = lock_takes(standby)
    assert pid_of(active_token) == active.proc.pid and pid_of(standby_token) == standby.proc.pid
    assert sampler.holders(until=killed_at) == {active_token}
    assert sampler.holders(since=killed_at) <= {active_token, None, standby_token}
    taken = sampler.first(standby_token)
    assert taken is not None and taken > killed_at
    assert sampler.holders(since=taken) == {standby_token}, "the lock changed hands after the takeover"
    # within the lock's lifetime, one standby poll (ttl/3) and a margin
    assert taken - killed_at <= LOCK_SECONDS * 4 / 3 + TAKEOVER_MARGIN, f"took over {taken - killed_at:.1f}s after"

    # And no job was created twice: one per input commit, each committed once
    status = cluster.jobs.inspect(job_id)[1]
    check = check_outputs(job, output_bytes(cluster.pfs, cluster.pfs.inspect_commit(job.pipeline, job_id)))
    fault_matrix.add_check("active scheduler SIGKILLed, standby takes over", check, status.state.value)
    assert status.state == JobState.JOB_SUCCESS, status
    assert (check.lost, check.duplicated, check.extra) == (0, 0, ())
    assert check.equal
    jobs = assert_each_job_committed_once(cluster, job.pipeline, {first.id, second.id})
    assert len(jobs) == 2
