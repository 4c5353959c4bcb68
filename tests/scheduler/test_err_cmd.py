"""transform.err_cmd / err_stdin end to end on the embedded default: real storage (memory, local
folder, S3 over HTTP), the local runtime's sandbox, the in-process scheduler."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from scheduler.cli.embedded import settle
from scheduler.job_records import DatumState, JobState
from scheduler.pipelines import Pipelines
from scheduler.queries import JobQueries
from scheduler.render_pps import datum_state, job_fields, job_raw, progress
from scheduler.settings import SchedulerSettings
from scheduler.store import PpsStore
from storage.objects import ObjectStore
from storage.repos import Pfs
from tests.scheduler.pipeline_helpers import files_of
from worker.settings import WorkerSettings

# Fails on any input holding "boom", after writing an output that must never be committed.
FRAGILE = {
    "pipeline": {"name": "fragile"},
    "transform": {
        "cmd": ["sh", "-c", "echo trying $in; echo partial > /pfs/out/$(basename $in).partial; "
                            "grep -q boom $in && exit 3; cp $in /pfs/out/"],
        "err_cmd": ["sh"],
        # err_stdin is fed to err_cmd: it checks it sees the inputs and an empty /pfs/out.
        "err_stdin": [
            "echo recovering $in",
            "[ -z \"$(ls -A /pfs/out)\" ] || { echo out-not-empty; exit 9; }",
            "grep -q boom $in || exit 8",
            "[ \"$PPS_PIPELINE_NAME\" = fragile ] || exit 7",
            "echo discarded > /pfs/out/from-err-cmd",
        ],
    },
    "input": {"pfs": {"repo": "in", "glob": "/*"}},
    "datum_tries": 2,
}


class Herd:
    def __init__(self, store: ObjectStore, scratch: Path) -> None:
        self.pfs = Pfs(store)
        self.pipelines = Pipelines(self.pfs)
        self.jobs = JobQueries(self.pfs)
        self.records = PpsStore(store)
        self.worker = WorkerSettings(runtime="local", scratch=str(scratch))

    def settle(self) -> None:
        settle(self.pfs, SchedulerSettings(broker=None, parallelism=2), self.worker)

    def put(self, files: dict[str, bytes]) -> None:
        self.pfs.put_files("in", "master", list(files.items()))
        self.settle()

    def create(self, spec: dict[str, Any]) -> None:
        self.pipelines.create(copy.deepcopy(spec))
        self.settle()

    def last_job(self, pipeline: str = "fragile") -> Any:
        return self.jobs.list(pipeline)[0]

    def stdout(self, job_id: str, datum: str) -> list[tuple[int, str]]:
        scope = self.jobs.log_scope(None, job_id, datum)
        return [(line.attempt, line.message) for line in self.jobs.new_log_lines(scope) if line.stream == "stdout"]

    def datum_of(self, job_id: str, name: str) -> str:
        _, rows = self.jobs.datums(job_id)
        (found,) = [d.id for d, _ in rows if d.inputs[0].path == name]
        return found


@pytest.fixture
def herd(object_store: ObjectStore, tmp_path: Path) -> Herd:
    h = Herd(object_store, tmp_path / "scratch")
    h.pfs.create_repo("in")
    return h


def test_err_cmd_recovers_a_datum_after_its_last_try(herd: Herd) -> None:
    # Given a good and a bad input, and a pipeline whose cmd fails on the bad one
    herd.put({"/good": b"ok\n", "/bad": b"boom\n"})
    # When it runs with datum_tries 2 and an err_cmd that exits 0
    herd.create(FRAGILE)
    # Then the job succeeds, counting the datum as recovered, not failed nor processed
    info, status = herd.last_job()
    assert status.state == JobState.JOB_SUCCESS, status.reason
    assert (status.data_total, status.data_processed, status.data_failed, status.data_recovered) == (2, 1, 0, 1)
    assert progress(status) == "1 + 0 + 1 / 2"
    assert job_raw(info, status)["data_recovered"] == 1 and status.failed_datums == ()
    assert ("Recovered", 1) in job_fields(info, status, datetime.now(timezone.utc))  # inspect-job
    # And the recovered datum's outputs (the cmd's partial one, err_cmd's) are not committed
    assert files_of(herd.pfs, "fragile") == {"/good": b"ok\n", "/good.partial": b"partial\n"}
    # And err_cmd ran once, after the last try only, over the same inputs, fed err_stdin
    bad = herd.datum_of(info.id, "/bad")
    assert herd.stdout(info.id, bad) == [(1, "trying /pfs/in/bad"), (2, "trying /pfs/in/bad"),
                                         (2, "recovering /pfs/in/bad")]
    result = herd.records.read_result(info.id, bad)
    assert result is not None and result.state == DatumState.RECOVERED and result.attempt == 2
    assert result.outputs == {} and "exited with code 3" in result.reason and "recovered by err_cmd" in result.reason
    _, rows = herd.jobs.datums(info.id)
    assert [datum_state(d, r) for d, r in rows] == ["SUCCESS", "RECOVERED"]  # as 1.9 sorts them: recovered last


def test_a_recovered_datum_is_not_skipped_by_the_next_job(herd: Herd) -> None:
    # Given a job that recovered /bad
    herd.put({"/good": b"ok\n", "/bad": b"boom\n"})
    herd.create(FRAGILE)
    # When a new commit adds a file
    herd.put({"/new": b"fine\n"})
    # Then /good is skipped, /bad runs (and is recovered) again, /new is processed
    info, status = herd.last_job()
    assert status.state == JobState.JOB_SUCCESS
    assert (status.data_total, status.data_skipped, status.data_processed, status.data_recovered) == (3, 1, 1, 1)
    assert [n for n, _ in herd.stdout(info.id, herd.datum_of(info.id, "/bad"))] == [1, 2, 2]
    assert set(files_of(herd.pfs, "fragile")) == {"/good", "/good.partial", "/new", "/new.partial"}
    # And once the input is fixed, the datum succeeds and its output appears
    herd.put({"/bad": b"fixed\n"})
    status = herd.last_job()[1]
    assert (status.data_processed, status.data_skipped, status.data_recovered) == (1, 2, 0)
    assert files_of(herd.pfs, "fragile")["/bad"] == b"fixed\n"


def test_a_datum_whose_err_cmd_fails_stays_failed(herd: Herd) -> None:
    # Given an err_cmd that exits 5
    herd.put({"/bad": b"boom\n"})
    spec = copy.deepcopy(FRAGILE)
    spec["transform"]["err_stdin"] = ["echo giving up on $in", "exit 5"]
    herd.create(spec)
    # Then the datum failed, so the job failed with an empty output commit
    info, status = herd.last_job()
    assert status.state == JobState.JOB_FAILURE
    assert (status.data_failed, status.data_recovered, status.data_processed) == (1, 0, 0)
    assert herd.pfs.read_manifest(herd.pfs.inspect_commit("fragile", "master")).files == {}
    (bad,) = status.failed_datums
    result = herd.records.read_result(info.id, bad)
    assert result is not None and result.state == DatumState.FAILED and result.error == "user_code"
    assert "exited with code 3" in result.reason and "err_cmd exited with code 5" in result.reason
    assert herd.stdout(info.id, bad)[-1] == (2, "giving up on /pfs/in/bad")


def test_err_cmd_is_not_run_while_tries_are_left_nor_on_success(herd: Herd) -> None:
    # Given an err_cmd that would fail the datum if it ever ran, and inputs that succeed
    herd.put({"/good": b"ok\n"})
    spec = copy.deepcopy(FRAGILE)
    spec["transform"]["err_stdin"] = ["echo err-cmd-ran", "exit 1"]
    herd.create(spec)
    info, status = herd.last_job()
    assert status.state == JobState.JOB_SUCCESS and status.data_recovered == 0
    assert herd.stdout(info.id, herd.datum_of(info.id, "/good")) == [(1, "trying /pfs/in/good")]


def test_err_cmd_accepts_the_transform_accept_return_code(herd: Herd) -> None:
    # Given accept_return_code [4] and an err_cmd exiting 4 (Pachyderm checks err_cmd against it too)
    herd.put({"/bad": b"boom\n"})
    spec = copy.deepcopy(FRAGILE)
    spec["transform"]["err_stdin"] = ["exit 4"]
    spec["transform"]["accept_return_code"] = [4]
    spec["datum_tries"] = 1
    herd.create(spec)
    status = herd.last_job()[1]
    assert status.state == JobState.JOB_SUCCESS and status.data_recovered == 1
