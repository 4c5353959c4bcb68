"""Commands that wait on jobs in distributed mode say when no scheduler is running (issue 10).

Real parts: redis-server, moto's S3 server, `herd scheduler` and `herd worker` processes, user
code in Docker. Without a scheduler holding the lock, `herd flush-commit` prints once on stderr
`no scheduler is running: start one with herd scheduler` and keeps waiting; a scheduler started
later picks the job up and the flush returns. With a scheduler running, it says nothing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from scheduler.broker import Broker
from scheduler.cli.waiting import NO_SCHEDULER
from scheduler.lock import active_scheduler
from tests.distributed.conftest import HERD, Cluster, with_image
from tests.fixtures.services import wait_until

COPY = {
    "pipeline": {"name": "copy"},
    "transform": {"image": "busybox", "cmd": ["sh", "-c", "cp $in /pfs/out/"]},
    "input": {"pfs": {"repo": "in", "glob": "/*"}},
}


def _broker(cluster: Cluster) -> Broker:
    return Broker(cluster.env["HERD_BROKER"])


def _flush(
    cluster: Cluster, commit_id: str, tmp_path: Path, timeout: str,
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    out, err = tmp_path / "flush.out", tmp_path / "flush.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(  # noqa: S603 - our own CLI
            [*HERD, "flush-commit", f"in@{commit_id}", "--timeout", timeout, "--json"],
            env=cluster.env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
        )
    return proc, out, err


def _setup(cluster: Cluster) -> str:
    cluster.pfs.create_repo("in")
    commit = cluster.put("in", {"/a": b"alpha\n"})
    cluster.pipelines.create(with_image(COPY, cluster.image))
    return commit.id


def test_the_probe_reads_who_holds_the_lock(cluster: Cluster) -> None:
    broker = _broker(cluster)
    try:
        assert active_scheduler(broker) is None
        scheduler = cluster.scheduler()
        cluster.wait_for(lambda: active_scheduler(broker) is not None, "the scheduler to take its lock")
        holder = active_scheduler(broker)
        assert holder is not None and f"-{scheduler.proc.pid}-" in holder
        assert active_scheduler(broker) == holder  # reading it takes nothing
        scheduler.stop()
        assert active_scheduler(broker) is None  # a clean stop frees the lock
    finally:
        broker.close()


def test_flush_says_no_scheduler_runs_and_keeps_waiting_until_one_does(cluster: Cluster, tmp_path: Path) -> None:
    # Given a commit a pipeline owes a job on, and no scheduler
    commit_id = _setup(cluster)

    # When flush-commit waits on it
    proc, out, err = _flush(cluster, commit_id, tmp_path, timeout="180")
    try:
        # Then within a few seconds it says so on stderr, and keeps waiting
        said = wait_until(lambda: NO_SCHEDULER in err.read_text(), timeout=30, interval=0.2)
        assert said, cluster.diagnose(f"no warning; stderr: {err.read_text()!r}")
        assert proc.poll() is None

        # And when a scheduler and a worker start, the job runs and the flush returns it
        cluster.scheduler()
        worker = cluster.worker("w1")
        cluster.wait_ready(worker)
        assert proc.wait(timeout=150) == 0, cluster.diagnose(err.read_text())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["job"]["pipeline"]["name"], r["job"]["state"]) for r in rows] == [("copy", "JOB_SUCCESS")]
    assert err.read_text().count(NO_SCHEDULER) == 1  # said once, not once per poll


def test_flush_that_times_out_without_scheduler_said_why(cluster: Cluster, tmp_path: Path) -> None:
    commit_id = _setup(cluster)
    proc, _, err = _flush(cluster, commit_id, tmp_path, timeout="10")
    assert proc.wait(timeout=60) != 0
    text = err.read_text()
    assert text.count(NO_SCHEDULER) == 1 and "flush-commit timed out waiting for pipeline 'copy'" in text


def test_flush_with_a_scheduler_running_says_nothing(cluster: Cluster, tmp_path: Path) -> None:
    # Given a scheduler holding its lock and a worker
    broker = _broker(cluster)
    try:
        cluster.scheduler()
        worker = cluster.worker("w1")
        cluster.wait_ready(worker)
        cluster.wait_for(lambda: active_scheduler(broker) is not None, "the scheduler to take its lock")
    finally:
        broker.close()
    # And a pipeline whose job takes a while (so flush waits, and watches, for some seconds)
    cluster.pfs.create_repo("in")
    commit = cluster.put("in", {"/a": b"alpha\n"})
    slow = {**COPY, "transform": {**COPY["transform"], "cmd": ["sh", "-c", "sleep 6; cp $in /pfs/out/"]}}
    cluster.pipelines.create(with_image(slow, cluster.image))

    # When flush-commit waits on the commit
    proc, out, err = _flush(cluster, commit.id, tmp_path, timeout="150")
    assert proc.wait(timeout=170) == 0, cluster.diagnose(err.read_text())

    # Then the job came back, and nothing was said about the scheduler
    assert [json.loads(line)["job"]["state"] for line in out.read_text().splitlines()] == ["JOB_SUCCESS"]
    assert NO_SCHEDULER not in err.read_text()
