"""The CLI on a laptop needs none of herd[cluster]'s packages (celery, kombu, redis, docker):
the embedded default runs with them made unimportable, and a verb that needs one says so in
one line naming it and the extra.

The child processes run the installed `herd` with a `sitecustomize` on PYTHONPATH whose
meta-path finder raises ModuleNotFoundError for those packages, as a Python without them would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.cli.wiring import CLUSTER_PACKAGES

ROOT = Path(__file__).resolve().parents[2]
HERD = ROOT / ".venv" / "bin" / "herd"

BLOCKER = f'''
import sys

BLOCKED = {set(CLUSTER_PACKAGES)!r}


class _NotInstalled:
    """herd without its cluster extra: these packages cannot be imported."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
'''

SPEC = {
    "pipeline": {"name": "count"},
    "transform": {"image": "busybox", "cmd": ["sh", "-c", "wc -c < /pfs/words/a.txt > /pfs/out/bytes"]},
    "input": {"pfs": {"repo": "words", "glob": "/"}},
}


@pytest.fixture
def laptop(tmp_path: Path) -> dict[str, str]:
    """The environment of a herd installed without `[cluster]`, on a fresh local store."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {key: value for key, value in os.environ.items() if not key.startswith("HERD_")}
    env.update({
        "PYTHONPATH": str(site), "HERD_STORAGE": f"file://{tmp_path / 'store'}",
        "HERD_RUNTIME": "local", "HERD_SCRATCH": str(tmp_path / "scratch"),
    })
    return env


def herd(env: dict[str, str], *args: str, cwd: Path | None = None, input: bytes | None = None,
         ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(HERD), *args], env=env, cwd=cwd, input=input, capture_output=True, timeout=300)


def ok(env: dict[str, str], *args: str, cwd: Path | None = None, input: bytes | None = None) -> str:
    result = herd(env, *args, cwd=cwd, input=input)
    assert result.returncode == 0, (args, result.stderr.decode())
    return result.stdout.decode()


def test_the_blocker_blocks(laptop: dict[str, str]) -> None:
    for package in CLUSTER_PACKAGES:
        result = subprocess.run([sys.executable, "-c", f"import {package}"], env=laptop, capture_output=True)
        assert result.returncode != 0 and b"ModuleNotFoundError" in result.stderr, package


@pytest.mark.parametrize("runtime", ["local", "auto"])
def test_embedded_flow_runs_without_cluster_packages(laptop: dict[str, str], tmp_path: Path, runtime: str) -> None:
    # Given no celery, kombu, redis nor docker (auto: no Docker SDK means the local runtime),
    # When the quickstart's kind of flow runs
    laptop["HERD_RUNTIME"] = runtime
    spec = tmp_path / "count.json"
    spec.write_text(json.dumps(SPEC))
    ok(laptop, "create-repo", "words")
    ok(laptop, "put-file", "words", "master", "/a.txt", input=b"hello world\n")
    ok(laptop, "create-pipeline", "-f", str(spec))
    flushed = ok(laptop, "flush-commit", "words", "master")
    jobs = ok(laptop, "list-job")
    # Then the pipeline's job ran in-process and its output reads back
    assert "success" in flushed and "count" in jobs and "success" in jobs
    assert ok(laptop, "get-file", "count", "master", "/bytes").strip() == "12"
    assert {"words", "count"} <= {line.split()[0] for line in ok(laptop, "list-repo").splitlines()[1:]}


@pytest.mark.parametrize(("args", "env", "what"), [
    (["worker"], {"HERD_BROKER": "redis://127.0.0.1:9/0"}, "herd worker"),
    (["scheduler"], {"HERD_BROKER": "redis://127.0.0.1:9/0"}, "herd scheduler"),
    (["flush-commit", "words", "master"], {"HERD_BROKER": "redis://127.0.0.1:9/0"}, "HERD_BROKER"),
    (["put-file", "words", "master", "/b.txt"], {"HERD_RUNTIME": "docker"}, "HERD_RUNTIME=docker"),
])
def test_cluster_verbs_name_the_missing_package(
    laptop: dict[str, str], tmp_path: Path, args: list[str], env: dict[str, str], what: str,
) -> None:
    # Given a repo with a commit and a pipeline on it (so a put-file has a job to run),
    # When a verb needs a cluster package
    ok(laptop, "create-repo", "words")
    ok(laptop, "put-file", "words", "master", "/a.txt", input=b"x\n")
    spec = tmp_path / "count.json"
    spec.write_text(json.dumps(SPEC))
    ok(laptop, "create-pipeline", "-f", str(spec))
    result = herd({**laptop, **env}, *args, input=b"y\n")
    # Then one line names the verb, the package and the extra, exit 1, no traceback
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 1, result.stderr.decode()
    assert len(lines) == 1 and lines[0].startswith(f"error: {what} needs the Python package '"), lines
    assert lines[0].endswith("which is not installed: pip install 'herd[cluster]'")
    assert lines[0].split("'")[1] in CLUSTER_PACKAGES
