"""A job's two bulk steps, creating it (plan, index read) and finishing it (merge, index, output
commit), run with the cyclic collector paused, and leave it as it was: on after success, on
after a step that raised, and paused when someone had paused it before."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from scheduler import lifecycle
from scheduler.job_records import JobState
from scheduler.store import PpsStore
from storage.errors import DataCorrupted
from storage.repos import Pfs
from tests.scheduler.pipeline_helpers import copy_pipeline, run_to_end


@pytest.fixture
def pfs(tmp_path: Path) -> Pfs:
    return copy_pipeline(tmp_path / "store")


def spy(monkeypatch: pytest.MonkeyPatch, name: str, seen: list[bool]) -> None:
    """Record whether the collector runs when lifecycle calls its `name` (a step inside the job's)."""
    real = getattr(lifecycle, name)

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(lifecycle, name, recording)


def test_creating_and_finishing_a_job_pause_the_collector_and_turn_it_back_on(
    pfs: Pfs, monkeypatch: pytest.MonkeyPatch,
) -> None:
    planned: list[bool] = []
    merged: list[bool] = []
    spy(monkeypatch, "plan_datums", planned)
    spy(monkeypatch, "merged", merged)
    assert gc.isenabled()
    run_to_end(pfs)
    assert planned == [False] and merged == [False]
    assert gc.isenabled()
    records = PpsStore(pfs.objects)
    (job_id,) = records.job_markers("copy")
    assert records.read_status(job_id).state == JobState.JOB_SUCCESS
    assert sorted(info.path for info in pfs.list_file("copy", "master", "/")) == [f"/f{i}" for i in range(5)]


@pytest.mark.parametrize("step", ["plan_datums", "merged"])
def test_a_step_that_raises_leaves_the_collector_on(pfs: Pfs, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        assert not gc.isenabled()
        raise OSError(f"{step}: broken on purpose")

    monkeypatch.setattr(lifecycle, step, broken)
    with pytest.raises(OSError, match=step):
        run_to_end(pfs)
    assert gc.isenabled()


def test_a_merge_refused_fails_the_job_and_leaves_the_collector_on(pfs: Pfs, monkeypatch: pytest.MonkeyPatch) -> None:
    def clashing(*args: Any, **kwargs: Any) -> Any:
        raise DataCorrupted("two datums wrote /f0 on purpose")

    monkeypatch.setattr(lifecycle, "merged", clashing)
    run_to_end(pfs)
    assert gc.isenabled()
    records = PpsStore(pfs.objects)
    (job_id,) = records.job_markers("copy")
    status = records.read_status(job_id)
    assert status.state == JobState.JOB_FAILURE and "/f0 on purpose" in status.reason


def test_a_collector_paused_before_stays_paused_after_a_job(pfs: Pfs) -> None:
    gc.disable()
    try:
        run_to_end(pfs)
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert [info.path for info in pfs.list_file("copy", "master", "/")][:1] == ["/f0"]
