"""Live logs in distributed mode: a real `herd scheduler` and `herd worker` (Docker runtime) on
redis and S3, and `herd get-logs -f` in another process, as on another machine."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time

from tests.distributed.conftest import HERD, Cluster


def spec(cluster: Cluster, name: str, script: str) -> dict:
    return {
        "pipeline": {"name": name},
        "transform": {"image": cluster.image, "cmd": ["sh", "-c", script]},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
    }


def start_job(cluster: Cluster, name: str, script: str) -> str:
    cluster.pfs.create_repo("in")
    cluster.put("in", {"/x": b"x\n"})
    cluster.pipelines.create(spec(cluster, name, script))
    cluster.wait_for(lambda: bool(cluster.jobs.list(name)), "the job")
    return cluster.jobs.list(name)[0][0].id


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    fd, data = proc.stdout.fileno(), b""
    end = time.monotonic() + timeout
    while not data.endswith(b"\n") and time.monotonic() < end:
        if select.select([fd], [], [], 0.2)[0]:
            chunk = os.read(fd, 1)
            if not chunk:
                break
            data += chunk
    return data


def job_ended(cluster: Cluster, job_id: str) -> bool:
    status = cluster.jobs.inspect(job_id)[1]
    return status.state.terminal


def test_follow_shows_a_running_datums_line_then_ends_with_the_job(cluster: Cluster) -> None:
    # Given a scheduler, a Docker worker, and a datum that prints, sleeps 5 s, prints on stderr
    cluster.scheduler()
    cluster.wait_ready(cluster.worker("w1"))
    job_id = start_job(cluster, "slow", "echo first; sleep 5; echo second >&2")
    # When another process follows the job's logs
    follower = subprocess.Popen([*HERD, "get-logs", "-f", "--job", job_id], env=cluster.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Then the first line shows while the datum still runs
        assert read_line(follower, 90) == b"first\n", cluster.diagnose("no first line")
        assert not job_ended(cluster, job_id)
        # And the follower ends by itself once the job has, with the stderr line
        out, err = follower.communicate(timeout=120)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    assert out == b"second\n"
    assert job_ended(cluster, job_id)


def test_a_worker_killed_mid_datum_leaves_each_attempts_lines_once(cluster: Cluster) -> None:
    # Given a worker running a datum that has printed its first line
    cluster.scheduler()
    w1 = cluster.worker("w1")
    cluster.wait_ready(w1)
    job_id = start_job(cluster, "retried", "echo begin; sleep 6; echo end >&2")
    scope = cluster.jobs.log_scope(None, job_id, None)
    cluster.wait_for(lambda: any(x.message == "begin" for x in cluster.jobs.new_log_lines(scope)),
                     "attempt 1's first line")
    # When the worker is killed mid-datum, and another one takes the datum over
    w1.kill()
    cluster.wait_ready(cluster.worker("w2"))
    cluster.wait_for(lambda: job_ended(cluster, job_id), "the job to end", timeout=120)
    # Then get-logs shows attempt 1's line and attempt 2's lines, each once, attempt 2 marked
    raw = subprocess.run([*HERD, "get-logs", "--job", job_id, "--json"], env=cluster.env, capture_output=True,
                         timeout=60, check=True)
    lines = [json.loads(line) for line in raw.stdout.splitlines()]
    user = [(r["attempt"], r["stream"], r["message"], r["worker"]) for r in lines if r["stream"] != "herd"]
    assert user == [(1, "stdout", "begin", "w1"), (2, "stdout", "begin", "w2"), (2, "stderr", "end", "w2")], user
    human = subprocess.run([*HERD, "get-logs", "--job", job_id], env=cluster.env, capture_output=True,
                           timeout=60, check=True)
    assert human.stdout == b"begin\nbegin\nend\n"
    assert b"attempt 2" in human.stderr
