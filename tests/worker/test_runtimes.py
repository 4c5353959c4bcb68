"""The runtime is built from WorkerSettings: each setting reaches the runtime it configures.

HERD_OUTPUT_QUOTA reaches the Docker runtime object (which unpacks /pfs/out under it) and the
local path (whose outputs are checked when collected); HERD_LOCAL_ISOLATION reaches the local
sandbox. The settings are the caller's, loaded once: nothing here reads the environment again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.cli.embedded import settle
from scheduler.job_records import JobState
from scheduler.pipelines import Pipelines
from scheduler.queries import JobQueries
from scheduler.settings import SchedulerSettings
from storage.errors import InvalidArgument
from storage.local import LocalObjectStore
from storage.repos import Pfs
from storage.setting_types import load_settings
from worker.docker_runtime import DockerRuntime
from worker.process_runtime import Isolation, ProcessRuntime
from worker.runtimes import open_runtime, runtime_options
from worker.settings import WorkerSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("HERD_")]:
        monkeypatch.delenv(name)


def test_output_quota_from_the_environment_reaches_the_docker_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given HERD_OUTPUT_QUOTA and HERD_RUNTIME=docker, loaded once as the CLI loads them
    monkeypatch.setenv("HERD_OUTPUT_QUOTA", "4096")
    monkeypatch.setenv("HERD_RUNTIME", "docker")
    settings = load_settings(WorkerSettings)
    monkeypatch.delenv("HERD_OUTPUT_QUOTA")  # later reads of the environment would see no quota
    # When the runtime is built from the settings (the engine is only reached on first use)
    runtime = open_runtime(settings)
    # Then it is the Docker runtime, unpacking outputs under that quota
    assert isinstance(runtime, DockerRuntime)
    assert runtime.output_quota == 4096


def test_no_quota_means_none_for_docker() -> None:
    runtime = open_runtime(WorkerSettings(runtime="docker"))
    assert isinstance(runtime, DockerRuntime) and runtime.output_quota is None


def test_the_local_runtime_takes_isolation_and_protected_folders(tmp_path: Path) -> None:
    # Given settings naming the local runtime and a sandbox
    settings = WorkerSettings(runtime="local", local_isolation="rewrite", output_quota=10, log_flush_seconds=0.25)
    # When built with the folders user code must not see
    runtime = open_runtime(settings, protect=[tmp_path])
    # Then the local runtime uses exactly that sandbox
    assert isinstance(runtime, ProcessRuntime)
    assert runtime.isolation is Isolation.REWRITE
    assert runtime_options("local", settings, (tmp_path,)) == {"isolation": "rewrite", "protect": (tmp_path,)}
    # (and Docker's: the quota it unpacks /pfs/out under, how often it reads a running datum's output)
    assert runtime_options("docker", settings) == {"output_quota": 10, "log_poll_seconds": 0.25}


def test_a_name_overrides_the_settings_runtime() -> None:
    assert isinstance(open_runtime(WorkerSettings(runtime="docker"), name="local"), ProcessRuntime)
    with pytest.raises(InvalidArgument, match="unknown runtime 'dockr'"):
        open_runtime(WorkerSettings(), name="dockr")


def _quota_pipeline(pfs: Pfs) -> JobQueries:
    pfs.create_repo("in")
    pfs.put_files("in", "master", [("/a", b"a")])
    Pipelines(pfs).create({
        "pipeline": {"name": "big"},
        "transform": {"cmd": ["sh", "-c", "head -c 100 /dev/zero > /pfs/out/big"]},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
        "datum_tries": 1,
    })
    return JobQueries(pfs)


def test_output_quota_passed_down_reaches_the_local_runtime(tmp_path: Path) -> None:
    # Given no HERD_OUTPUT_QUOTA in the environment, and settings passed down with a 10-byte quota
    pfs = Pfs(LocalObjectStore(tmp_path / "store"))
    jobs = _quota_pipeline(pfs)
    worker = WorkerSettings(runtime="local", output_quota=10, scratch=str(tmp_path / "scratch"))
    # When the embedded run takes them (as the CLI passes the settings it loaded once)
    settle(pfs, SchedulerSettings(broker=None, parallelism=1), worker)
    # Then the datum writing 100 bytes fails naming the quota, and nothing is committed
    info, status = jobs.list("big")[0]
    assert status.state == JobState.JOB_FAILURE
    reasons = " ".join(e["reason"] for d in status.failed_datums for e in jobs.logs(None, info.id, d))
    assert "10" in reasons and "quota" in reasons.lower()
    assert pfs.read_manifest(pfs.inspect_commit("big", "master")).files == {}


def test_the_same_run_without_a_quota_commits_the_output(tmp_path: Path) -> None:
    # Given the same pipeline and settings without a quota; Then its output is committed
    pfs = Pfs(LocalObjectStore(tmp_path / "store"))
    jobs = _quota_pipeline(pfs)
    worker = WorkerSettings(runtime="local", scratch=str(tmp_path / "scratch"))
    settle(pfs, SchedulerSettings(broker=None, parallelism=1), worker)
    _, status = jobs.list("big")[0]
    assert status.state == JobState.JOB_SUCCESS
    assert set(pfs.read_manifest(pfs.inspect_commit("big", "master")).files) == {"/big"}


AUTO_PROBE = (
    "import sys; from worker.runtimes import open_runtime; from worker.settings import WorkerSettings; "
    "runtime = open_runtime(WorkerSettings(runtime='auto')); print(type(runtime).__name__, 'docker' in sys.modules)"
)


@pytest.mark.parametrize(("docker_host", "loads_sdk"), [("unix:///nonexistent/docker.sock", False),
                                                        ("tcp://127.0.0.1:9", True)])
def test_auto_without_an_engine_runs_local_and_loads_the_sdk_only_for_a_socket_it_may_reach(
    tmp_path: Path, docker_host: str, loads_sdk: bool,
) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("HERD_")}
    env |= {"DOCKER_HOST": docker_host, "HERD_SCRATCH": str(tmp_path)}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", AUTO_PROBE], env=env, cwd=root, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["ProcessRuntime", str(loads_sdk)]
