"""`herd --version` and the usage-error exit code, through the installed console script."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from scheduler.cli import group

ROOT = Path(__file__).resolve().parents[2]
HERD = Path(sys.executable).with_name("herd")
PYPROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]


def run(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_"))}
    env.update({"HERD_STORAGE": f"file://{tmp_path / 'store'}", **extra})
    return subprocess.run([str(HERD), *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    # Given the installed herd; When asked for its version
    proc = run(tmp_path, "--version")
    # Then it prints the one version pyproject.toml declares, and touches no storage
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"herd, version {PYPROJECT_VERSION}\n"
    assert proc.stderr == ""
    assert not (tmp_path / "store").exists()


def test_version_answers_even_with_a_bad_setting(tmp_path: Path) -> None:
    # A broken environment must not hide which herd is installed (the first thing a bug report asks)
    proc = run(tmp_path, "--version", HERD_LEASE_SECONDS="-3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"herd, version {PYPROJECT_VERSION}"


def test_version_falls_back_to_pyproject_in_an_uninstalled_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a source tree with no installed distribution metadata
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    # Then the version still comes from pyproject.toml
    assert group.herd_version() == PYPROJECT_VERSION


def test_installed_metadata_matches_pyproject() -> None:
    assert importlib.metadata.version("herd") == PYPROJECT_VERSION


@pytest.mark.parametrize("args", [
    ["--no-such-option"],
    ["no-such-command"],
    ["get-file", "data"],  # too few words
    ["list-repo", "extra-argument"],
    [],  # no command: help on stderr
])
def test_usage_errors_exit_64_apart_from_not_found(tmp_path: Path, args: list[str]) -> None:
    # When the command line itself is wrong
    proc = run(tmp_path, *args)
    # Then the exit status is EX_USAGE (64), not 2 (which means "not found"), no traceback,
    # and nothing was written
    assert proc.returncode == group.USAGE_EXIT == 64, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "store").exists()


def test_not_found_still_exits_2(tmp_path: Path) -> None:
    proc = run(tmp_path, "inspect-repo", "nothing-here")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == "error: repo 'nothing-here' not found\n"
