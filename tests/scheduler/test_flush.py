"""flush-commit and the end of jobs, and Pachyderm 1.9's TestUpdateStoppedPipeline, through the
installed `herd` console script on the embedded default, on the local folder and on moto's S3
server.

flush-commit returns once every job downstream of the commit has ended, whatever the end
(success, failure, killed, unrunnable), printing each with its state; it exits 0 whatever the
states, as Pachyderm 1.9's flush returns failed jobs too. Every flush here has a --timeout, so a
regression that waits forever fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.s3 import FAKE_AWS_ENV, fresh_bucket

ROOT = Path(__file__).resolve().parents[2]
HERD = ROOT / ".venv" / "bin" / "herd"
FLUSH = ("--timeout", "60")

# stage1 copies its input, and fails on a file holding "bad"; stage2 reads stage1's output.
STAGE1 = {
    "pipeline": {"name": "stage1"},
    "transform": {"cmd": ["sh", "-c", "if grep -q bad $in; then echo bad input >&2; exit 1; fi; cp $in /pfs/out/"]},
    "input": {"pfs": {"repo": "in", "glob": "/*"}},
    "datum_tries": 1,
}
STAGE2 = {
    "pipeline": {"name": "stage2"},
    "transform": {"cmd": ["sh", "-c", "cat /pfs/stage1/* > /pfs/out/all"]},
    "input": {"pfs": {"repo": "stage1", "glob": "/"}},
}


@dataclass
class Backend:
    name: str
    env: dict[str, str]


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The local folder and moto's S3 server (the cases the issue names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_"))}
    env["HERD_RUNTIME"] = "local"
    if request.param == "file":
        env["HERD_STORAGE"] = f"file://{tmp_path / 'store'}"
    else:
        endpoint = request.getfixturevalue("moto_server").url
        env.update(HERD_STORAGE=f"s3://{fresh_bucket()}/herd", AWS_ENDPOINT_URL=endpoint, **FAKE_AWS_ENV)
    return Backend(request.param, env)


@pytest.fixture
def local(tmp_path: Path) -> Backend:
    """The local folder only: variants of the cases above, where storage adds nothing new."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_"))}
    return Backend("file", {**env, "HERD_RUNTIME": "local", "HERD_STORAGE": f"file://{tmp_path / 'store'}"})


def herd(backend: Backend, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(HERD), *args], env=backend.env, input=input, capture_output=True, timeout=180)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())
    assert proc.returncode == 0, f"herd {' '.join(args)} exited {proc.returncode}: {out.stderr}"
    assert "Traceback" not in out.stderr
    return out


def create(backend: Backend, tmp_path: Path, *specs: dict, verb: str = "create-pipeline", flags: tuple = ()) -> None:
    path = tmp_path / f"spec-{len(list(tmp_path.glob('spec-*')))}.json"
    path.write_text("".join(json.dumps(s) for s in specs))
    herd(backend, verb, "-f", str(path), *flags)


def put(backend: Backend, repo: str, path: str, data: bytes) -> str:
    herd(backend, "put-file", repo, "master", path, "-f", "-", input=data)
    return json.loads(herd(backend, "inspect-commit", repo, "master", "--json").stdout)["commit"]["id"]


def flush_raw(backend: Backend, repo: str, commit: str) -> list[dict]:
    out = herd(backend, "flush-commit", f"{repo}@{commit}", *FLUSH, "--json").stdout
    return [json.loads(line) for line in out.splitlines()]


def states(rows: list[dict]) -> list[tuple[str, str]]:
    return [(r["job"]["pipeline"]["name"], r["job"]["state"]) for r in rows]


def test_flush_returns_every_successful_job_with_its_output(backend: Backend, tmp_path: Path) -> None:
    # Given a two-stage DAG that processed a good file
    herd(backend, "create-repo", "in")
    commit = put(backend, "in", "/a", b"good\n")
    create(backend, tmp_path, STAGE1, STAGE2)

    # When flush-commit waits on the input commit
    rows = flush_raw(backend, "in", commit)

    # Then both jobs came back, upstream first, each with its finished output commit
    assert states(rows) == [("stage1", "JOB_SUCCESS"), ("stage2", "JOB_SUCCESS")]
    assert [r["commit"]["repo"]["name"] for r in rows] == ["stage1", "stage2"]
    assert all(r["commit"]["id"] == r["job"]["job"]["id"] and r["finished"] and r["error"] == "" for r in rows)
    assert rows[1]["job"]["input_commits"] == [rows[0]["commit"]]  # stage2's job read stage1's output
    assert herd(backend, "get-file", "stage2", "master", "/all").stdout == "good\n"
    # And the table shows the job and its state on each row
    table = herd(backend, "flush-commit", "in", commit, *FLUSH).stdout.splitlines()
    assert table[0].split() == ["REPO", "COMMIT", "PARENT", "STARTED", "DURATION", "SIZE", "JOB", "STATE"]
    assert [(line.split()[0], line.split()[-1]) for line in table[1:]] == [("stage1", "success"), ("stage2", "success")]


def test_flush_returns_a_failed_job_and_the_unrunnable_one_below_it(backend: Backend, tmp_path: Path) -> None:
    # Given the DAG, and a commit whose file makes stage1's user code fail
    herd(backend, "create-repo", "in")
    put(backend, "in", "/a", b"good\n")
    create(backend, tmp_path, STAGE1, STAGE2)
    bad = put(backend, "in", "/b", b"bad\n")

    # When flush-commit waits on it: it returns (exit 0) instead of waiting forever
    rows = flush_raw(backend, "in", bad)

    # Then both jobs are there with their states: stage1 failed, stage2 could not run
    assert states(rows) == [("stage1", "JOB_FAILURE"), ("stage2", "JOB_UNRUNNABLE")]
    failed, unrunnable = rows
    assert failed["job"]["reason"].startswith("failed to process datum(s): ")
    assert failed["commit"]["id"] == failed["job"]["job"]["id"] and failed["error"] == failed["job"]["reason"]
    assert unrunnable["job"]["reason"] == f"inputs failed: stage1@{failed['commit']['id']}"
    assert unrunnable["job"]["input_commits"] == [failed["commit"]]
    # And the table says so per row
    table = herd(backend, "flush-commit", "in", bad, *FLUSH).stdout.splitlines()[1:]
    assert [line.split()[0] for line in table] == ["stage1", "stage2"]
    assert " failure: failed to process datum" in table[0] and " unrunnable: inputs failed: stage1@" in table[1]


def test_flush_returns_a_killed_job_and_nothing_below_it(backend: Backend, tmp_path: Path) -> None:
    # Given stage1 whose job outlives its job_timeout (killed, no output commit), and stage2
    slow = {**STAGE1, "transform": {"cmd": ["sh", "-c", "sleep 3; cp $in /pfs/out/"]}, "job_timeout": "1s"}
    herd(backend, "create-repo", "in")
    commit = put(backend, "in", "/a", b"good\n")
    create(backend, tmp_path, slow, STAGE2)

    # When flush-commit waits on the commit
    rows = flush_raw(backend, "in", commit)

    # Then it returns the killed job; stage2 got no input from this commit, so no job to wait for
    assert states(rows) == [("stage1", "JOB_KILLED")]
    assert rows[0]["commit"] is None and "job_timeout" in rows[0]["job"]["reason"]
    assert herd(backend, "list-job", "-p", "stage2", "--json").stdout == ""
    table = herd(backend, "flush-commit", "in", commit, *FLUSH).stdout.splitlines()
    assert table[1].split()[:3] == ["stage1", "<none>", "<none>"] and "killed: job_timeout" in table[1]


def test_flush_does_not_wait_for_a_stopped_pipeline(local: Backend, tmp_path: Path) -> None:
    backend = local
    # Given stage1 stopped before a commit arrives
    herd(backend, "create-repo", "in")
    put(backend, "in", "/a", b"good\n")
    create(backend, tmp_path, STAGE1, STAGE2)
    herd(backend, "stop-pipeline", "stage1")
    commit = put(backend, "in", "/b", b"more\n")
    # When flush-commit waits on the new commit, Then it returns at once: no job will come
    assert flush_raw(backend, "in", commit) == []


def test_inspect_job_block_returns_the_ended_job(local: Backend, tmp_path: Path) -> None:
    backend = local
    herd(backend, "create-repo", "in")
    put(backend, "in", "/a", b"bad\n")
    create(backend, tmp_path, STAGE1)
    job = json.loads(herd(backend, "list-job", "--json").stdout.splitlines()[0])
    raw = json.loads(herd(backend, "inspect-job", "--block", job["job"]["id"], "--json").stdout)
    assert raw["state"] == "JOB_FAILURE" and raw["data_failed"] == 1


# --- Pachyderm 1.9 TestUpdateStoppedPipeline ------------------------------------------------


COPY = {
    "pipeline": {"name": "p"},
    "transform": {"cmd": ["sh", "-c", "cp /pfs/data/file /pfs/out/file"]},
    "input": {"pfs": {"repo": "data", "glob": "/"}},
}
COPY_V2 = {**COPY, "transform": {"cmd": ["sh", "-c", "echo v2 > /pfs/out/version; cp /pfs/data/file /pfs/out/file"]}}

def output_commits(backend: Backend) -> list[str]:
    return [json.loads(line)["commit"]["id"] for line in herd(backend, "list-commit", "p", "--json").stdout.splitlines()]


def test_update_stopped_pipeline_runs_only_the_new_commit(backend: Backend, tmp_path: Path) -> None:
    _update_stopped_pipeline(backend, tmp_path, commit_before_update=False)


def test_update_stopped_pipeline_runs_a_commit_made_while_stopped(local: Backend, tmp_path: Path) -> None:
    _update_stopped_pipeline(local, tmp_path, commit_before_update=True)


def _update_stopped_pipeline(backend: Backend, tmp_path: Path, commit_before_update: bool) -> None:
    # Given a pipeline that ran one job on commit 1, then was stopped
    herd(backend, "create-repo", "data")
    put(backend, "data", "/file", b"foo\n")
    create(backend, tmp_path, COPY)
    assert len(output_commits(backend)) == 1
    herd(backend, "stop-pipeline", "p")

    # When it is updated while stopped, commit 2 arrives (before or after the update), and it starts
    if commit_before_update:
        second = put(backend, "data", "/file", b"bar\n")
    create(backend, tmp_path, COPY_V2, verb="update-pipeline")
    info = json.loads(herd(backend, "inspect-pipeline", "p", "--json").stdout)
    assert (info["version"], info["state"]) == (2, "PIPELINE_PAUSED")  # the update did not restart it
    assert len(output_commits(backend)) == 1
    if not commit_before_update:
        second = put(backend, "data", "/file", b"bar\n")
    herd(backend, "start-pipeline", "p")

    # Then there are 2 output commits in all, as in Pachyderm: no extra job of the new version
    # on commit 1; the new version ran commit 2
    assert len(output_commits(backend)) == 2
    jobs = [json.loads(line) for line in herd(backend, "list-job", "-p", "p", "--json").stdout.splitlines()]
    assert [(j["pipeline_version"], j["state"]) for j in jobs] == [(2, "JOB_SUCCESS"), (1, "JOB_SUCCESS")]
    assert jobs[0]["input_commits"] == [{"repo": {"name": "data"}, "id": second}]
    assert herd(backend, "get-file", "p", "master", "/version").stdout == "v2\n"
    assert herd(backend, "get-file", "p", "master", "/file").stdout == "bar\n"
    assert states(flush_raw(backend, "data", second)) == [("p", "JOB_SUCCESS")]


def test_update_of_a_stopped_pipeline_then_start_without_commit_runs_nothing(
    local: Backend, tmp_path: Path,
) -> None:
    backend = local
    herd(backend, "create-repo", "data")
    put(backend, "data", "/file", b"foo\n")
    create(backend, tmp_path, COPY)
    herd(backend, "stop-pipeline", "p")
    create(backend, tmp_path, COPY_V2, verb="update-pipeline")
    herd(backend, "start-pipeline", "p")
    assert len(output_commits(backend)) == 1
    # while a running pipeline's update runs the new version once on the current inputs (1.5.1+)
    create(backend, tmp_path, {**COPY_V2, "transform": {"cmd": ["sh", "-c", "echo v3 > /pfs/out/version"]}},
           verb="update-pipeline", flags=("--reprocess",))
    assert len(output_commits(backend)) == 2
    assert herd(backend, "get-file", "p", "master", "/version").stdout == "v3\n"
