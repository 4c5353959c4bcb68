"""HERD_LOG_FORMAT=json on a real cluster (issue 11): every line `herd scheduler` and `herd
worker` write on stderr is one JSON object with the same keys, and the records about a job say
which (the scheduler's progress, the worker's batch: Celery's own records included)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.distributed.conftest import HERD, Cluster, byte_job
from tests.fixtures.services import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.s3, pytest.mark.docker, pytest.mark.slow]

KEYS = ["time", "level", "component", "logger", "pipeline", "job", "datum", "message"]


def json_lines(path: Path) -> list[dict[str, object]]:
    """Every line of a stderr capture, each parsed as JSON (a line that is not fails, named)."""
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"{path.name} line {number} is not JSON: {line!r}")
    return records


def test_scheduler_and_worker_log_one_json_object_per_line(cluster: Cluster, tmp_path: Path) -> None:
    # Given a scheduler and a worker with HERD_LOG_FORMAT=json, stderr captured apart from stdout
    env = {**cluster.env, "HERD_LOG_FORMAT": "json"}
    procs = {}
    for name, args in (("scheduler", ["scheduler"]), ("worker", ["worker", "--concurrency", "2"])):
        with (tmp_path / f"{name}.out").open("wb") as out, (tmp_path / f"{name}.err").open("wb") as err:
            procs[name] = subprocess.Popen([*HERD, *args], env=env, stdout=out, stderr=err,  # noqa: S603
                                           stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_until(lambda: " ready." in (tmp_path / "worker.err").read_text(), timeout=60), \
            (tmp_path / "worker.err").read_text()[-3000:]
        # When a job runs through them
        job = byte_job("in", "rot", 6)
        cluster.pfs.create_repo("in")
        commit = cluster.put("in", job.inputs())
        cluster.pipelines.create(job.spec(cluster.image))
        cluster.flush("in", commit, timeout=180)
        info, _ = cluster.last_job("rot")
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=30)
    # Then every stderr line of both is a JSON object with the same keys, in that order
    scheduler, worker = json_lines(tmp_path / "scheduler.err"), json_lines(tmp_path / "worker.err")
    assert scheduler and worker
    assert all(list(record) == KEYS for record in scheduler + worker)
    assert {r["component"] for r in scheduler} == {"scheduler"} and {r["component"] for r in worker} == {"worker"}
    # And the scheduler's progress names the pipeline and the job
    progress = [r for r in scheduler if r["job"] == info.id]
    assert progress and all(r["pipeline"] == "rot" for r in progress)
    assert any(str(r["message"]).endswith("6/6 datums") for r in progress)
    # And the worker's records while a batch ran name its job (Celery's own "succeeded" among them)
    during = [r for r in worker if r["job"] == info.id]
    assert any("herd.process_batch" in str(r["message"]) for r in during), worker[-10:]
