"""User code misbehaving in Docker on a real cluster (fault matrix row 5).

One job holds good datums beside one datum per fault: out of memory under
resource_limits.memory, forks until the pids limit refuses them, /pfs/out filled past
HERD_OUTPUT_QUOTA, a hang past datum_timeout, writes outside /pfs/out. Each fault must fail its
datum with the cause named (the result's error code and reason, as inspect-datum shows them,
and the datum's logs), use exactly datum_tries attempts, upload not one byte of its output,
leave the worker up for the good datums, and never make the scheduler restart the job. A hang
with no datum_timeout is ended by stop-job (the worker kills it from its lease thread).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from scheduler.job_records import JobState
from scheduler.store import PpsStore
from storage.blobs import BlobStore
from tests.distributed.conftest import Cluster, FaultMatrix, all_attempts, output_bytes, results_of

pytestmark = [pytest.mark.redis, pytest.mark.s3, pytest.mark.docker, pytest.mark.slow]

QUOTA = 1_000_000
TRIES = 2
GOOD = ("good0", "good1", "good2")
# What each misbehaving datum does after writing its marker to /pfs/out; with the error code
# and the words its result (inspect-datum) and its logs must name.
FAULTS: dict[str, tuple[str, str, str, str]] = {
    # name: (script, error code, in the reason, in the logs)
    "oom": ("exec dd if=/dev/zero of=/dev/null bs=768M count=1", "oom", "out of memory", "out of memory"),
    # (the shell gives up at the first refused fork: its exit code, not 7, says so)
    "forks": ("i=0; while [ $i -lt 3000 ]; do sleep 1000 & i=$((i+1)); done; exit 7",
              "user_code", "user code exited with code", "pids limit"),
    "fill": ("head -c 600000 /dev/zero | tr '\\0' F > /pfs/out/fill-a; "
             "head -c 600000 /dev/zero | tr '\\0' G > /pfs/out/fill-b", "output_quota", "HERD_OUTPUT_QUOTA",
             "HERD_OUTPUT_QUOTA"),
    "hang": ("sleep 1000", "timeout", "datum_timeout", "timed out"),
    "escape": ("for t in /pfs/escape /pfs/in/evil /etc/evil /evil; do echo x > $t && exit 0; done; exit 3",
               "user_code", "exited with code 3", "Read-only file system"),
}


def marker(name: str) -> bytes:
    return f"marker of datum {name}: must never be stored\n".encode()


def script() -> str:
    cases = " ".join(f"{name}) {body[0]} ;;" for name, body in FAULTS.items())
    return ('n=$(basename $faulty); printf "marker of datum %s: must never be stored\\n" $n > /pfs/out/$n; '
            f'case $n in {cases} *) rm /pfs/out/$n; tr a-z A-Z < $faulty > /pfs/out/$n ;; esac')


def spec(cluster: Cluster) -> dict:
    return {
        "pipeline": {"name": "misbehave"},
        "transform": {"image": cluster.image, "cmd": ["sh", "-c", script()]},
        "input": {"pfs": {"repo": "faulty", "glob": "/*"}},
        "resource_limits": {"memory": "256Mi"},
        "datum_timeout": "4s",
        "datum_tries": TRIES,
    }


def test_each_user_code_fault_fails_its_datum_only(cluster: Cluster, fault_matrix: FaultMatrix) -> None:
    # Given a worker with an output quota, and a job of good datums beside one per fault
    cluster.scheduler()
    worker = cluster.start("w1", "worker", "--concurrency", "2", HERD_WORKER_ID="w1", HERD_OUTPUT_QUOTA=str(QUOTA))
    cluster.wait_ready(worker)
    cluster.pfs.create_repo("faulty")
    names = [*GOOD, *FAULTS]
    commit = cluster.put("faulty", {f"/{name}": f"input of {name}\n".encode() for name in names})
    cluster.pipelines.create(spec(cluster))
    # When it runs to its end
    cluster.flush("faulty", commit, timeout=300)
    job_id = cluster.last_job("misbehave")[0].id
    status = cluster.jobs.inspect(job_id)[1]
    results = {r.datum_id: r for r in results_of(cluster.pfs, job_id)}
    _, rows = cluster.jobs.datums(job_id)
    by_name = {planned.inputs[0].path.strip("/"): (planned, results.get(planned.id)) for planned, _ in rows}
    attempts = all_attempts(cluster.pfs, job_id)
    lost = sum(1 for name in names if by_name[name][1] is None)
    fault_matrix.add("user code: oom, forks, quota, hang, escape", len(names), lost, 0,
                     f"{status.state.value}, {len(FAULTS)} failed as expected")
    # Then the job fails for its failed datums, and every datum has a result
    assert status.state == JobState.JOB_FAILURE, cluster.diagnose(status.reason)
    assert lost == 0 and (status.data_processed, status.data_failed) == (len(GOOD), len(FAULTS)), status
    # The good datums succeeded, on a worker that stayed up through every fault
    assert worker.alive, cluster.diagnose("the worker died")
    for name in GOOD:
        planned, result = by_name[name]
        assert result is not None and result.state.value == "SUCCESS", (name, result)
        assert _counted(attempts[planned.id]) == 1
    # Each fault failed its datum with its cause named, after exactly datum_tries attempts
    for name, (_, error, in_reason, in_logs) in FAULTS.items():
        planned, result = by_name[name]
        assert result is not None and result.state.value == "FAILED", (name, result)
        assert result.error == error, (name, result.error, result.reason)
        assert in_reason in result.reason, (name, result.reason)
        logs = cluster.jobs.new_log_lines(cluster.jobs.log_scope(None, job_id, planned.id))
        text = " ".join(line.message for line in logs)  # stderr lines, and herd's note of each attempt's reason
        assert in_logs in text, (name, logs)
        assert _counted(attempts[planned.id]) == TRIES, (name, attempts[planned.id])
    # Not one byte of a failed datum's output reached storage
    blobs = BlobStore(cluster.pfs.objects)
    failed_outputs = [marker(name) for name in FAULTS] + [b"F" * 600000, b"G" * 600000]
    stored = [data[:40] for data in failed_outputs if blobs.exists(hashlib.sha256(data).hexdigest())]
    assert not stored, stored
    # And the datum_timeout (or any failure) never restarts the job: no new job, no new attempt
    counts = _attempt_counts(cluster, job_id)
    jobs = len(cluster.jobs.list("misbehave"))
    time.sleep(2 * float(cluster.env["HERD_RESEND_SECONDS"]))  # what must NOT happen has no condition to wait on
    assert len(cluster.jobs.list("misbehave")) == jobs == 1
    assert _attempt_counts(cluster, job_id) == counts
    assert cluster.jobs.inspect(job_id)[1].state == JobState.JOB_FAILURE


def _counted(attempts: list[Any]) -> int:
    """Attempts that used a try (not given back for an outage, not restarted by restart-datum)."""
    return sum(1 for a in attempts if not a.given_back and not a.restarted)


def _attempt_counts(cluster: Cluster, job_id: str) -> dict[str, int]:
    return {datum: len(attempts) for datum, attempts in all_attempts(cluster.pfs, job_id).items()}


def test_a_hang_without_datum_timeout_is_ended_by_stop_job(cluster: Cluster, docker_client: Any,
                                                           fault_matrix: FaultMatrix) -> None:
    # Given a datum that never ends, with no datum_timeout, on a worker of one process
    cluster.scheduler()
    worker = cluster.worker("w1", concurrency=1)
    cluster.wait_ready(worker)
    cluster.pfs.create_repo("forever_in")
    commit = cluster.put("forever_in", {"/x": b"x\n"})
    cluster.pipelines.create({
        "pipeline": {"name": "forever"},
        "transform": {"image": cluster.image, "cmd": ["sh", "-c", "echo started forever > /pfs/out/x; sleep 100000"]},
        "input": {"pfs": {"repo": "forever_in", "glob": "/*"}},
    })
    cluster.wait_for(lambda: _sleeping(docker_client, "forever"), "user code to hang", timeout=120)
    job_id = cluster.last_job("forever")[0].id
    # When stop-job is run
    cluster.pipelines.stop_job(job_id)
    # Then the worker kills the user code, the job ends killed, with no output and no result
    cluster.wait_for(lambda: not _sleeping(docker_client, "forever"), "the hung user code to be killed", timeout=60)
    status = cluster.jobs.inspect(job_id)[1]
    fault_matrix.add("user code hangs, no datum_timeout: stop-job", 1, 0, 0, status.state.value)
    assert status.state == JobState.JOB_KILLED, cluster.diagnose(status.reason)
    result = PpsStore(cluster.pfs.objects).read_result(job_id, _only_datum(cluster, job_id))
    assert result is None or result.error == "job_stopped", result
    assert not BlobStore(cluster.pfs.objects).exists(hashlib.sha256(b"started forever\n").hexdigest())
    # And the same worker process takes the next job's datum
    cluster.pfs.create_repo("next_in")
    next_commit = cluster.put("next_in", {"/y": b"next\n"})
    cluster.pipelines.create({
        "pipeline": {"name": "next"},
        "transform": {"image": cluster.image, "cmd": ["sh", "-c", "cp $next_in /pfs/out/y"]},
        "input": {"pfs": {"repo": "next_in", "glob": "/*"}},
    })
    cluster.flush("next_in", next_commit, timeout=120)
    assert cluster.last_job("next")[1].state == JobState.JOB_SUCCESS
    out = cluster.pfs.inspect_commit("next", "master")
    assert output_bytes(cluster.pfs, out) == {"/y": b"next\n"}
    assert worker.alive


def _only_datum(cluster: Cluster, job_id: str) -> str:
    _, rows = cluster.jobs.datums(job_id)
    return rows[0][0].id


def _sleeping(client: Any, pipeline: str) -> bool:
    """Whether a container of `pipeline` runs the hanging `sleep 100000`."""
    import docker.errors

    for container in client.containers.list(filters={"label": f"herd.pipeline={pipeline}"}):
        try:
            top = client.api.top(container.id)
        except docker.errors.APIError:
            continue
        if any("100000" in " ".join(row) for row in top.get("Processes") or []):
            return True
    return False
