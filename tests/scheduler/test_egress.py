"""egress.URL end to end on the embedded default: after the output commit is finished its files are
copied to a folder (file://) or to a bucket on moto's S3 server over HTTP; the job is
JOB_EGRESSING meanwhile and JOB_SUCCESS after. A target that refuses (a missing bucket, a path that
is no folder) fails the job naming the URL. Copying again is idempotent, and a `herd` killed mid-copy
(failpoint `egress.after_file`) leaves a job the next command finishes."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scheduler.cli.embedded import settle
from scheduler.job_records import JobState, transition
from scheduler.pipelines import Pipelines
from scheduler.queries import JobQueries
from scheduler.reconcile import EgressOutput, JobView, decide
from scheduler.render_pps import job_raw, job_state
from scheduler.settings import SchedulerSettings
from scheduler.spec import parse_spec
from scheduler.store import PpsStore
from storage.egress import egress_commit
from storage.errors import Conflict, EgressFailed, InvalidSpec
from storage.failpoints import EXIT_STATUS
from storage.local import LocalObjectStore
from storage.repos import Pfs
from storage.settings import StorageSettings
from tests.fixtures.s3 import FAKE_AWS_ENV, MotoServer, fresh_bucket

ROOT = Path(__file__).resolve().parents[2]
HERD = ROOT / ".venv" / "bin" / "herd"

COPY = {
    "pipeline": {"name": "copy"},
    "transform": {"cmd": ["sh", "-c", "cp -r /pfs/in/. /pfs/out/"]},
    "input": {"pfs": {"repo": "in", "glob": "/"}},
}
FILES = {"/a.txt": b"alpha\n", "/dir/b.txt": b"beta\n", "/dir/deeper/c.bin": bytes(range(256)) * 64}


def spec_with(url: str, key: str = "URL") -> dict[str, Any]:
    spec = copy.deepcopy(COPY)
    spec["egress"] = {key: url}
    return spec


class Herd:
    def __init__(self, pfs: Pfs, s3_endpoint: str | None = None) -> None:
        self.pfs = pfs
        self.pipelines = Pipelines(pfs)
        self.jobs = JobQueries(pfs)
        self.storage = StorageSettings(storage="memory://unused", s3_endpoint_url=s3_endpoint)

    def settle(self) -> None:
        settle(self.pfs, SchedulerSettings(broker=None, parallelism=2), None, self.storage)

    def run(self, spec: dict[str, Any], files: dict[str, bytes] = FILES) -> tuple[Any, Any]:
        self.pfs.create_repo("in")
        self.pfs.put_files("in", "master", list(files.items()))
        self.pipelines.create(copy.deepcopy(spec))
        self.settle()
        return self.jobs.list("copy")[0]


@pytest.fixture
def herd(tmp_path: Path) -> Herd:
    return Herd(Pfs(LocalObjectStore(tmp_path / "store")))


def folder_files(root: Path) -> dict[str, bytes]:
    return {"/" + str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- the spec and the state machine (pure) ----------------------------------------------------


@pytest.mark.parametrize("key", ["URL", "url"])
def test_egress_url_is_read_under_pachyderms_key_and_snake_case(key: str) -> None:
    spec = parse_spec(spec_with("s3://bucket/prefix", key))
    assert spec.egress is not None and spec.egress.url == "s3://bucket/prefix"
    assert "egress" not in spec.ignored_fields
    again = parse_spec(json.loads(spec.canonical_bytes()))  # the stored form parses the same
    assert again.egress == spec.egress


@pytest.mark.parametrize("url", ["http://example.com/x", "s3://", "file://relative/x", "ftp://h/x", "/tmp/x"])
def test_an_egress_url_herd_cannot_write_is_refused_by_name(url: str) -> None:
    with pytest.raises(InvalidSpec, match="egress") as caught:
        parse_spec(spec_with(url))
    assert url in str(caught.value)


def test_an_empty_egress_url_means_no_egress() -> None:
    spec = parse_spec(spec_with(""))
    assert spec.egress is not None and not spec.egress.url


def test_an_egressing_job_is_told_to_copy_and_moves_only_forward() -> None:
    view = JobView(job_id="j", state=JobState.JOB_EGRESSING, planned=True, now=0.0)
    assert decide(view) == [EgressOutput()]
    assert decide(JobView(job_id="j", state=JobState.JOB_EGRESSING, planned=True, now=0.0, stopped=True)) == []
    assert transition(JobState.JOB_RUNNING, JobState.JOB_EGRESSING, "j") == JobState.JOB_EGRESSING
    for end in (JobState.JOB_SUCCESS, JobState.JOB_FAILURE, JobState.JOB_KILLED):
        assert transition(JobState.JOB_EGRESSING, end, "j") == end
    with pytest.raises(Conflict):
        transition(JobState.JOB_EGRESSING, JobState.JOB_RUNNING, "j")
    with pytest.raises(Conflict):
        transition(JobState.JOB_SUCCESS, JobState.JOB_EGRESSING, "j")
    assert not JobState.JOB_EGRESSING.terminal


# --- to a folder ------------------------------------------------------------------------------


def test_egress_to_a_folder_copies_the_output_commit_and_then_succeeds(herd: Herd, tmp_path: Path) -> None:
    target = tmp_path / "egress" / "out"
    info, status = herd.run(spec_with(f"file://{target}"))
    assert status.state == JobState.JOB_SUCCESS, status.reason
    assert folder_files(target) == FILES
    assert job_raw(info, status)["state"] == "JOB_SUCCESS"
    # The output commit holds the same files (egress copies, it does not move)
    manifest = herd.pfs.read_manifest(herd.pfs.inspect_commit("copy", "master"))
    assert set(manifest.files) == set(FILES)


def test_egress_again_for_the_same_commit_leaves_the_same_files(herd: Herd, tmp_path: Path) -> None:
    target = tmp_path / "out"
    info, status = herd.run(spec_with(f"file://{target}"))
    before = folder_files(target)
    # A stale file of the same name (an earlier run, a crash mid-write) is overwritten, not appended to
    (target / "a.txt").write_bytes(b"stale and longer than before\n")
    assert egress_commit(herd.pfs, "copy", info.id, f"file://{target}", None) == len(FILES)
    assert egress_commit(herd.pfs, "copy", info.id, f"file://{target}", None) == len(FILES)
    assert folder_files(target) == before == FILES
    assert not [p for p in target.rglob("*") if p.name.startswith(".")]  # no temp files left


def test_egress_into_a_path_that_is_not_a_folder_fails_the_job_naming_the_url(herd: Herd, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"not a folder")
    url = f"file://{blocker}/out"
    info, status = herd.run(spec_with(url))
    assert status.state == JobState.JOB_FAILURE
    assert url in status.reason and "egress" in status.reason
    assert job_state(status).startswith("failure: egress to ")
    # The output commit itself was finished before the copy; downstream sees it as usual
    assert status.output_commit == info.id
    assert herd.pfs.inspect_commit("copy", info.id).failed_reason is None
    assert blocker.read_bytes() == b"not a folder"


def test_a_damaged_blob_fails_the_egress_and_names_the_file(herd: Herd, tmp_path: Path) -> None:
    target = tmp_path / "out"
    info, _ = herd.run(spec_with(f"file://{target}"))
    entry = herd.pfs.read_manifest(herd.pfs.inspect_commit("copy", info.id)).files["/a.txt"]
    blob = herd.pfs.objects.local_path(f"blobs/{entry.chunks[0][:2]}/{entry.chunks[0]}")
    assert blob is not None
    os.chmod(blob, 0o644)
    blob.write_bytes(b"ALPHA\n")  # same length, other bytes
    for path in target.rglob("*"):
        if path.is_file():
            path.unlink()
    with pytest.raises(Exception, match="a.txt") as caught:
        egress_commit(herd.pfs, "copy", info.id, f"file://{target}", None)
    assert getattr(caught.value, "code", None) == "input_corrupt"
    assert not (target / "a.txt").exists()  # damaged bytes never land at the target


# --- to S3 ------------------------------------------------------------------------------------


def make_bucket(server: MotoServer) -> str:
    """A fresh bucket on the server (created by a herd store under another prefix)."""
    from storage.s3 import S3ObjectStore

    bucket = fresh_bucket()
    S3ObjectStore(bucket, "seed", server.url).put("seed", b"")
    return bucket


def bucket_files(server: MotoServer, bucket: str, prefix: str) -> dict[str, bytes]:
    from storage.s3 import S3ObjectStore

    store = S3ObjectStore(bucket, prefix, server.url, create_bucket=False, check_conditional_writes=False)
    return {"/" + key: store.get(key) for key in store.list("")}


@pytest.mark.s3
def test_egress_to_s3_copies_every_file_under_the_prefix(moto_server: MotoServer, tmp_path: Path) -> None:
    herd = Herd(Pfs(LocalObjectStore(tmp_path / "store")), s3_endpoint=moto_server.url)
    bucket = make_bucket(moto_server)
    info, status = herd.run(spec_with(f"s3://{bucket}/exports/copy"))
    assert status.state == JobState.JOB_SUCCESS, status.reason
    assert bucket_files(moto_server, bucket, "exports/copy") == FILES
    # Nothing of herd's own lands there: no format marker, no conditional-write probe
    from storage.s3 import S3ObjectStore

    everything = S3ObjectStore(bucket, "exports", moto_server.url, create_bucket=False, check_conditional_writes=False)
    assert list(everything.list("_herd")) == []
    # Again for the same commit: the same objects
    egress_commit(herd.pfs, "copy", info.id, f"s3://{bucket}/exports/copy", moto_server.url)
    assert bucket_files(moto_server, bucket, "exports/copy") == FILES


@pytest.mark.s3
def test_egress_to_a_missing_bucket_fails_the_job_naming_the_url(moto_server: MotoServer, tmp_path: Path) -> None:
    herd = Herd(Pfs(LocalObjectStore(tmp_path / "store")), s3_endpoint=moto_server.url)
    bucket = fresh_bucket()
    url = f"s3://{bucket}/out"
    info, status = herd.run(spec_with(url))
    assert status.state == JobState.JOB_FAILURE
    assert url in status.reason and bucket in status.reason
    with pytest.raises(EgressFailed, match=url):
        egress_commit(herd.pfs, "copy", info.id, url, moto_server.url)
    # egress never creates the bucket
    from storage.errors import NotFound
    from storage.s3 import S3ObjectStore

    with pytest.raises(NotFound):
        S3ObjectStore(bucket, "", moto_server.url, create_bucket=False).get("anything")


# --- a crash mid-copy -------------------------------------------------------------------------


def _herd(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HERD), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


def test_a_herd_killed_mid_egress_leaves_a_job_the_next_command_finishes(tmp_path: Path) -> None:
    store, target = tmp_path / "store", tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_"))}
    env.update(FAKE_AWS_ENV, HERD_STORAGE=f"file://{store}", HERD_RUNTIME="local")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec_with(f"file://{target}")))
    pfs = Pfs(LocalObjectStore(store))
    pfs.create_repo("in")
    pfs.put_files("in", "master", list(FILES.items()))
    # When create-pipeline is killed after the first file reached the target
    crashed = _herd(dict(env, HERD_FAILPOINTS="egress.after_file:1"), tmp_path, "create-pipeline", "-f", str(spec_file))
    assert crashed.returncode == EXIT_STATUS, crashed.stderr
    records = PpsStore(pfs.objects)
    (job_id,) = records.job_markers("copy")
    status = records.read_status(job_id)
    assert status is not None and status.state == JobState.JOB_EGRESSING
    assert len(folder_files(target)) == 1
    # Then the next command that runs jobs copies again and ends the job
    done = _herd(env, tmp_path, "inspect-job", job_id, "--block", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "JOB_SUCCESS"
    assert folder_files(target) == FILES
