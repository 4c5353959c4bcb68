"""Start-up stays cheap: `herd --help` and `herd list-repo` on a local store do not import what
only other verbs need (Celery, boto3, Docker, the worker's runtimes, the job records).

Not a timing test (bench/startup.py measures the time): it runs the real entry point in a fresh
interpreter and reads `sys.modules` after it, so a new top-level import of a heavy module in any
command module shows up here by name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Run `main(argv)` as the console script does, then print every module the process imported.
PROBE = """
import json, sys
from scheduler.cli import main
try:
    main(json.loads(sys.argv[1]))
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""

# Needed only by the cluster verbs, the S3 backend or the Docker runtime.
CLUSTER = ("celery", "kombu", "redis", "boto3", "botocore", "docker", "prometheus_client")
# ...and by progress bars and pipeline specs.
NEVER_AT_START = (*CLUSTER, "rich", "yaml")
# herd modules that belong to running or showing jobs, not to listing repos.
JOB_MODULES = (
    "scheduler.render_pps", "scheduler.job_records", "scheduler.records", "scheduler.reconcile",
    "scheduler.dispatch_inprocess", "scheduler.loop", "scheduler.spec",
)


def imported_by(argv: list[str], storage: Path) -> set[str]:
    """The modules a fresh `herd ARGV` imports, with only HERD_STORAGE set (a user's plain env)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HERD_")}
    env["HERD_STORAGE"] = storage.as_uri()
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], env=env, capture_output=True,
                          text=True, timeout=120)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), done.stderr
    return set(report["modules"])


def loaded(modules: set[str], top: str) -> list[str]:
    return sorted(m for m in modules if m == top or m.startswith(top + "."))


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    folder = tmp_path / "store"
    folder.mkdir()
    return folder


def test_help_imports_no_backend_no_pydantic_no_worker(storage: Path) -> None:
    # Given a local store; When `herd --help` lists the verbs
    modules = imported_by(["--help"], storage)
    # Then no backend, no runtime and not even the settings or record models were imported
    for top in (*NEVER_AT_START, "worker", "pydantic", "pydantic_settings", "importlib.metadata", *JOB_MODULES):
        assert not loaded(modules, top), f"herd --help imported {loaded(modules, top)}"
    assert "scheduler.cli.pfs" in modules  # the probe did load the verbs it lists


def test_list_repo_on_a_local_store_imports_only_storage_and_settings(storage: Path) -> None:
    # Given a local store; When `herd list-repo` runs
    modules = imported_by(["list-repo"], storage)
    # Then it read the settings (every class, the worker's too) and storage, and nothing of the
    # cluster, the S3 backend, the runtimes or the job records
    for top in (*NEVER_AT_START, "storage.s3", *JOB_MODULES):
        assert not loaded(modules, top), f"herd list-repo imported {loaded(modules, top)}"
    assert loaded(modules, "worker") == ["worker", "worker.settings"]
    assert {"storage.repos", "storage.local", "worker.settings"} <= modules


def test_a_verb_that_shows_jobs_still_loads_the_job_records(storage: Path) -> None:
    # Given a local store; When `herd list-job` runs (the lazily imported renderer is used)
    modules = imported_by(["list-job"], storage)
    # Then the job records were imported on first use, and still no backend of the cluster
    assert {"scheduler.render_pps", "scheduler.job_records"} <= modules
    for top in CLUSTER:
        assert not loaded(modules, top), f"herd list-job imported {loaded(modules, top)}"
