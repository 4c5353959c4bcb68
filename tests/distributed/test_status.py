"""`herd status` and `herd version` against a real cluster, and the create-pipeline warning (issue 11).

Real parts: redis-server, moto's S3 server, `herd scheduler` and `herd worker` processes (user
code in Docker). Heartbeats every second here (HERD_HEARTBEAT_SECONDS=1), so a node is gone
after three missed beats; a SIGKILLed worker is named gone, a cleanly stopped one just leaves.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from scheduler.cli.waiting import NO_SCHEDULER
from storage.layout import STORAGE_FORMAT
from tests.distributed.conftest import HERD, Cluster, with_image
from tests.fixtures.services import wait_until

BEAT = 1.0
WINDOW = 3 * BEAT  # scheduler/heartbeat.py MISSES beats
COPY = {
    "pipeline": {"name": "copy"},
    "transform": {"image": "busybox", "cmd": ["sh", "-c", "cp $in /pfs/out/"]},
    "input": {"pfs": {"repo": "in", "glob": "/*"}},
}


def herd(cluster: Cluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HERD, *args], env=cluster.env, input=stdin, capture_output=True, text=True, timeout=120)


def status(cluster: Cluster) -> tuple[int, dict[str, Any]]:
    proc = herd(cluster, "status", "--json")
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def workers_by_name(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {w["name"]: w for w in status(cluster)[1]["workers"]}


def test_status_and_version_of_a_cluster_and_a_killed_worker_named_gone(cluster: Cluster) -> None:
    cluster.env["HERD_HEARTBEAT_SECONDS"] = str(BEAT)
    # Given no scheduler and no worker yet: status says what is missing, non-zero
    code, report = status(cluster)
    assert code == 6 and report["broker"]["up"] and report["storage"]["up"]
    assert set(report["problems"]) == {NO_SCHEDULER, "no worker is running: start one with herd worker"}

    # When a scheduler, a standby and two workers run
    scheduler = cluster.scheduler()
    cluster.wait_for(lambda: any(s["state"] == "active" for s in status(cluster)[1]["schedulers"]), "an active scheduler")
    standby = cluster.start("standby", "scheduler")
    w1 = cluster.start("w1", "worker", "--concurrency", "2", HERD_WORKER_ID="w1")
    w2 = cluster.worker("w2")
    cluster.wait_ready(w1, w2)
    cluster.wait_for(lambda: {"w1", "w2"} <= set(workers_by_name(cluster)), "both workers' heartbeats")
    seen: list[Any] = []

    def both_schedulers_beat() -> bool:
        seen[:] = status(cluster)[1]["schedulers"]
        live = {s["pid"] for s in seen if s["state"] in ("active", "standby")}
        return {scheduler.proc.pid, standby.proc.pid} <= live

    assert wait_until(both_schedulers_beat, timeout=60, interval=0.2), cluster.diagnose(
        f"timed out waiting for both schedulers' heartbeats; status shows {seen}")

    # Then status is ok and names each part
    code, report = status(cluster)
    assert code == 0 and report["ok"], report
    by_state = {s["state"]: s for s in report["schedulers"]}
    assert by_state["active"]["pid"] == scheduler.proc.pid and by_state["standby"]["pid"] == standby.proc.pid
    assert by_state["active"]["since"].endswith("Z") and by_state["active"]["last_heartbeat"].endswith("Z")
    workers = {w["name"]: w for w in report["workers"]}
    assert (workers["w1"]["concurrency"], workers["w2"]["concurrency"]) == (2, 1)
    assert workers["w1"]["state"] == workers["w2"]["state"] == "up"
    assert workers["w1"]["runtime"] == "docker" and workers["w1"]["pid"] == w1.proc.pid
    assert isinstance(report["broker"]["queue_depth"], int)
    table = herd(cluster, "status")
    assert table.returncode == 0 and "secret" not in table.stdout
    kinds = [line.split()[:3] for line in table.stdout.splitlines()[1:]]
    assert ["worker", "w1", "up"] in kinds and ["scheduler", by_state["active"]["name"], "active"] in kinds

    # And the versions of every live part
    version = json.loads(herd(cluster, "version", "--json").stdout)
    assert {w["name"] for w in version["workers"]} == {"w1", "w2"} 
    assert {s["pid"] for s in version["schedulers"]} >= {scheduler.proc.pid, standby.proc.pid}
    assert {w["version"] for w in version["workers"]} == {version["client"]}
    assert version["storage"]["format"] == STORAGE_FORMAT

    # When a job of 4 datums runs, the workers' datums-done counters add up to it
    cluster.pfs.create_repo("in")
    commit = cluster.put("in", {f"/f{i}": f"{i}\n".encode() for i in range(4)})
    cluster.pipelines.create(with_image(COPY, cluster.image))
    cluster.flush("in", commit)
    cluster.wait_for(lambda: sum(w["datums_done"] for w in workers_by_name(cluster).values()) == 4,
                     "the datums-done counters to reach 4")

    # When w2 is SIGKILLed, status names it gone once its heartbeat window has passed
    w2.kill()
    gone = wait_until(lambda: workers_by_name(cluster)["w2"]["state"] == "gone", timeout=WINDOW + 10, interval=0.2)
    assert gone, cluster.diagnose("w2 not named gone")
    code, report = status(cluster)
    assert code == 0, report  # w1 still runs: the cluster can work
    assert {w["name"]: w["state"] for w in report["workers"]} == {"w1": "up", "w2": "gone"}
    assert "w2" not in {w["name"] for w in json.loads(herd(cluster, "version", "--json").stdout)["workers"]}

    # When w1 stops cleanly it leaves (no record), and with no live worker status fails
    w1.stop()
    cluster.wait_for(lambda: "w1" not in workers_by_name(cluster), "w1's record to go")
    code, report = status(cluster)
    assert code == 6 and report["problems"] == ["no worker is running: start one with herd worker"]

    # When the active scheduler is killed, the standby takes over and status follows
    scheduler.kill()
    cluster.wait_for(
        lambda: any(s["state"] == "active" and s["pid"] == standby.proc.pid for s in status(cluster)[1]["schedulers"]),
        "the standby to become active", timeout=60,
    )


def test_create_pipeline_warns_when_no_scheduler_runs(cluster: Cluster) -> None:
    # Given distributed mode with a broker but no scheduler
    herd(cluster, "create-repo", "in")
    spec = json.dumps(with_image(COPY, cluster.image))
    # When a pipeline is created, Then it is created and the warning is said once on stderr
    proc = herd(cluster, "create-pipeline", "-f", "-", stdin=spec)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(NO_SCHEDULER) == 1
    assert [p.name for p in cluster.pipelines.list()] == ["copy"]

    # And with a scheduler running, nothing is said
    cluster.scheduler()
    cluster.wait_for(lambda: any(s["state"] == "active" for s in status(cluster)[1]["schedulers"]), "an active scheduler")
    other = json.dumps(with_image({**COPY, "pipeline": {"name": "copy2"}}, cluster.image))
    proc = herd(cluster, "create-pipeline", "-f", "-", stdin=other)
    assert proc.returncode == 0 and NO_SCHEDULER not in proc.stderr, proc.stderr


def test_list_pipeline_and_status_show_a_running_job(cluster: Cluster) -> None:
    cluster.env["HERD_HEARTBEAT_SECONDS"] = str(BEAT)
    cluster.scheduler()
    worker = cluster.worker("w1")
    cluster.wait_ready(worker)
    cluster.pfs.create_repo("in")
    cluster.put("in", {"/a": b"a\n", "/b": b"b\n"})
    slow = {**COPY, "transform": {**COPY["transform"], "cmd": ["sh", "-c", "sleep 4; cp $in /pfs/out/"]}}
    cluster.pipelines.create(with_image(slow, cluster.image))

    def running() -> list[dict[str, Any]]:
        return list(status(cluster)[1]["jobs"])

    cluster.wait_for(lambda: bool(running()), "a running job in status")
    job = running()[0]
    assert job["pipeline"] == "copy" and job["data_total"] == 2
    cluster.wait_idle()
    assert running() == []
    line = herd(cluster, "list-pipeline").stdout.splitlines()[1]
    assert line.rstrip().endswith("success") and "2 + 0 / 2" in line
