"""Hypothesis profiles for the scheduler's pure-function tests, chosen by HYPOTHESIS_PROFILE.

`ci`: deterministic (derandomize) with ~100 examples, no deadline (shared CI runners are slow).
`dev` (default): hypothesis's defaults, minus the per-example deadline (noisy on shared machines).
Also the `work` fixture: the current directory of the CLI tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, max_examples=100, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True)
def _local_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the local runtime: HERD_RUNTIME defaults to `auto` (Docker wherever an engine answers,
    as under `make test`), and these specs name images (`busybox`) no test engine holds."""
    monkeypatch.setenv("HERD_RUNTIME", "local")


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory of CLI commands: relative -f paths are named from here."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder
