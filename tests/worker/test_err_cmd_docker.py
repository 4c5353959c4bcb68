"""err_cmd and secrets on the real Docker engine: the embedded scheduler, a local store, the
busybox test image (tests/fixtures/docker.py). err_cmd runs in the same image over the same
inputs; a mount_path secret is a read-only folder of the container; no container is left."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from scheduler.cli.embedded import settle
from scheduler.job_records import DatumState, JobState
from scheduler.pipelines import Pipelines
from scheduler.queries import JobQueries
from scheduler.settings import SchedulerSettings
from scheduler.store import PpsStore
from storage.local import LocalObjectStore
from storage.repos import Pfs
from tests.fixtures.docker import herd_containers
from tests.fixtures.services import wait_until
from tests.scheduler.pipeline_helpers import files_of
from worker.settings import WorkerSettings

VALUE = "d0ck3r-secret-value"


def fragile(image: str) -> dict[str, Any]:
    return {
        "pipeline": {"name": "fragile"},
        "transform": {
            "image": image,
            "cmd": ["sh", "-c", "echo trying $in; echo partial > /pfs/out/x.partial; grep -q boom $in && exit 3; "
                                "cp $in /pfs/out/"],
            "err_cmd": ["sh"],
            "err_stdin": [
                "echo recovering $in",
                "[ -z \"$(ls -A /pfs/out)\" ] || exit 9",
                "grep -q boom $in || exit 8",
                "echo discarded > /pfs/out/from-err-cmd",
            ],
        },
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
        "datum_tries": 2,
    }


class DockerHerd:
    def __init__(self, root: Path, worker_id: str, secrets_dir: Path | None = None) -> None:
        self.pfs = Pfs(LocalObjectStore(root / "store"))
        self.jobs = JobQueries(self.pfs)
        self.records = PpsStore(self.pfs.objects)
        self.worker = WorkerSettings(runtime="docker", worker_id=worker_id, scratch=str(root / "scratch"),
                                     secrets_dir=str(secrets_dir) if secrets_dir else None)
        self.pfs.create_repo("in")

    def run(self, files: dict[str, bytes], spec: dict[str, Any]) -> tuple[Any, Any]:
        self.pfs.put_files("in", "master", list(files.items()))
        Pipelines(self.pfs).create(copy.deepcopy(spec))
        settle(self.pfs, SchedulerSettings(broker=None, parallelism=2), self.worker)
        return self.jobs.list(spec["pipeline"]["name"])[0]

    def stdout(self, job_id: str, datum: str) -> list[tuple[int, str]]:
        scope = self.jobs.log_scope(None, job_id, datum)
        return [(line.attempt, line.message) for line in self.jobs.new_log_lines(scope) if line.stream == "stdout"]


@pytest.fixture
def docker_herd(tmp_path: Path, docker_client: Any, docker_worker_id: str) -> Any:
    made: list[DockerHerd] = []

    def make(secrets_dir: Path | None = None) -> DockerHerd:
        herd = DockerHerd(tmp_path, docker_worker_id, secrets_dir)
        made.append(herd)
        return herd

    yield make
    assert wait_until(lambda: not herd_containers(docker_client, docker_worker_id), timeout=30), (
        "a container was left behind"
    )


def test_err_cmd_recovers_a_datum_in_docker(docker_herd: Any, busybox_image: str) -> None:
    herd = docker_herd()
    # Given a good and a bad input; When the cmd fails the bad one twice and err_cmd exits 0
    info, status = herd.run({"/good": b"ok\n", "/bad": b"boom\n"}, fragile(busybox_image))
    # Then the job succeeds with one recovered datum whose outputs are not committed
    assert status.state == JobState.JOB_SUCCESS, status.reason
    assert (status.data_processed, status.data_failed, status.data_recovered) == (1, 0, 1)
    assert files_of(herd.pfs, "fragile") == {"/good": b"ok\n", "/x.partial": b"partial\n"}
    # And err_cmd ran once after the last try, in the container, fed err_stdin
    _, rows = herd.jobs.datums(info.id)
    (bad,) = [d.id for d, r in rows if r is not None and r.state == DatumState.RECOVERED]
    assert herd.stdout(info.id, bad) == [(1, "trying /pfs/in/bad"), (2, "trying /pfs/in/bad"),
                                         (2, "recovering /pfs/in/bad")]


def test_a_failing_err_cmd_fails_the_job_in_docker(docker_herd: Any, busybox_image: str) -> None:
    herd = docker_herd()
    spec = fragile(busybox_image)
    spec["transform"]["err_stdin"] = ["exit 6"]
    info, status = herd.run({"/bad": b"boom\n"}, spec)
    assert status.state == JobState.JOB_FAILURE and status.data_failed == 1
    result = herd.records.read_result(info.id, status.failed_datums[0])
    assert result is not None and "err_cmd exited with code 6" in result.reason


@pytest.fixture
def held(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    (folder / "creds").mkdir(parents=True)
    (folder / "creds" / "token").write_text(VALUE)
    (folder / "creds" / "user").write_text("robot")
    return folder


def test_secrets_in_docker_env_var_and_a_read_only_mount(docker_herd: Any, busybox_image: str, held: Path) -> None:
    herd = docker_herd(held)
    # Given a pipeline with an env_var secret and a mount_path secret, and an err_cmd that uses both
    script = "\n".join([
        "[ \"$TOKEN\" = \"$(cat /etc/creds/token)\" ] || exit 11",
        "[ \"$(cat /etc/creds/user)\" = robot ] || exit 12",
        "! echo x > /etc/creds/token 2>/dev/null || exit 13",  # read-only to user code
        "! rm -f /etc/creds/user 2>/dev/null && [ -f /etc/creds/user ] || exit 14",
        "! touch /etc/creds/new 2>/dev/null || exit 15",
        "ls /etc/creds > /pfs/out/keys; echo ok",
    ])
    spec = {
        "pipeline": {"name": "uses-secrets"},
        "transform": {"image": busybox_image, "cmd": ["sh"], "stdin": [script], "secrets": [
            {"name": "creds", "env_var": "TOKEN", "key": "token"},
            {"name": "creds", "mount_path": "/etc/creds"},
        ]},
        "input": {"pfs": {"repo": "in", "glob": "/"}},
        "datum_tries": 1,
    }
    info, status = herd.run({"/x": b"x"}, spec)
    # Then user code read both, could change neither, and nothing stored holds the value
    assert status.state == JobState.JOB_SUCCESS, status.reason
    assert files_of(herd.pfs, "uses-secrets") == {"/keys": b"token\nuser\n"}
    stored = b"".join(p.read_bytes() for p in (held.parent / "store").rglob("*") if p.is_file())
    assert VALUE.encode() not in stored


def test_a_missing_mounted_secret_fails_the_datum_in_docker(docker_herd: Any, busybox_image: str, held: Path) -> None:
    herd = docker_herd(held)
    spec = {
        "pipeline": {"name": "no-secret"},
        "transform": {"image": busybox_image, "cmd": ["true"], "secrets": [{"name": "gone", "mount_path": "/s"}]},
        "input": {"pfs": {"repo": "in", "glob": "/"}},
        "datum_tries": 1,
    }
    info, status = herd.run({"/x": b"x"}, spec)
    assert status.state == JobState.JOB_FAILURE
    result = herd.records.read_result(info.id, status.failed_datums[0])
    assert result is not None and "secret 'gone' is not held by this worker" in result.reason
