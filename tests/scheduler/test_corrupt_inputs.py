"""Damaged stored data through herd's real entry points, on the local folder and on moto S3:
the CLI (click's runner and the installed console script), `herd fsck`, and a pipeline on the
embedded default (HERD_RUNTIME=local) whose datum reads a damaged file.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from scheduler.cli import cli
from scheduler.cli.embedded import settle
from scheduler.job_records import JobInfo, JobState, JobStatus
from scheduler.queries import JobQueries
from scheduler.settings import SchedulerSettings
from storage.blobs import BlobStore
from storage.errors import DataCorrupted
from storage.layout import blob_key, commit_key, manifest_key, pack_key
from storage.model import FileEntry, Manifest
from storage.objects import ObjectStore
from storage.repos import Pfs
from tests.fixtures.s3 import FAKE_AWS_ENV, fresh_bucket

ROOT = Path(__file__).resolve().parents[2]
HERD = ROOT / ".venv" / "bin" / "herd"
BIG = 3 * 1024 * 1024 + 7  # several read blocks: the threaded-hash path


@dataclass
class Backend:
    env: dict[str, str]
    objects: ObjectStore

    def pfs(self) -> Pfs:
        return Pfs(self.objects)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        from storage.local import LocalObjectStore

        folder = tmp_path / "store"
        return Backend({"HERD_STORAGE": f"file://{folder}"}, LocalObjectStore(folder))
    from storage.s3 import S3ObjectStore

    server = request.getfixturevalue("moto_server")
    bucket = fresh_bucket()
    env = {"HERD_STORAGE": f"s3://{bucket}/herd", "HERD_S3_ENDPOINT_URL": server.url, **FAKE_AWS_ENV}
    return Backend(env, S3ObjectStore(bucket, "herd", server.url))



def herd(backend: Backend, *args: str, input: bytes | None = None, code: int = 0) -> Result:
    result = CliRunner(env=backend.env).invoke(cli, list(args), input=input)
    assert result.exit_code == code, (result.output, result.exception)
    return result


def fails(backend: Backend, code: int, *args: str) -> str:
    """A command that must fail: exit `code`, one `error:` line on stderr, no traceback."""
    result = herd(backend, *args, code=code)
    errors = result.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return errors[0]


def flip(objects: ObjectStore, key: str) -> bytes:
    """Flip one byte of a stored object in place; returns the damaged body."""
    data = bytearray(objects.get(key))
    data[len(data) // 2] ^= 0x01
    objects.put(key, bytes(data))
    return bytes(data)


def blob_of(pfs: Pfs, repo: str, path: str, index: int = 0) -> tuple[str, str]:
    commit = pfs.inspect_commit(repo, "master")
    return commit.id, pfs.read_manifest(commit).files[path].chunks[index]


@pytest.fixture
def damaged(backend: Backend, work: Path) -> dict[str, str]:
    """Repo `data`: /ok (healthy), /bad (one byte flipped), /dir/big (big, flipped), /dir/fine."""
    herd(backend, "create-repo", "data")
    herd(backend, "put-file", "data", "master", "/ok", input=b"fine bytes")
    herd(backend, "put-file", "data", "master", "/bad", input=b"bytes that will rot")
    (work / "big").write_bytes(os.urandom(BIG))
    herd(backend, "put-file", "data", "master", "/dir/big", "-f", "big")
    herd(backend, "put-file", "data", "master", "/dir/fine", input=b"fine")
    pfs = backend.pfs()
    commit, bad = blob_of(pfs, "data", "/bad")
    _, big = blob_of(pfs, "data", "/dir/big")
    flip(backend.objects, blob_key(bad))
    flip(backend.objects, blob_key(big))
    return {"commit": commit, "bad": bad, "big": big}


# ---- get-file ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/bad", "/dir/big"])
def test_get_file_of_damaged_bytes_fails_naming_everything_and_leaves_no_file(
    backend: Backend, damaged: dict[str, str], work: Path, path: str
) -> None:
    blob = damaged["bad" if path == "/bad" else "big"]
    # To a file: exit 8, one line naming repo, commit, path and blob; no file, no temp file
    message = fails(backend, 8, "get-file", "data", "master", path, "-o", "out.bin")
    for part in ("'data'", damaged["commit"], f"'{path}'", blob):
        assert part in message
    assert sorted(os.listdir(work)) == ["big"]
    # To stdout (a stream): exit 8 and the same line; the blob's last block was never printed
    result = herd(backend, "get-file", "data", "master", path, code=8)
    assert blob in result.stderr and len(result.stderr.splitlines()) == 1
    assert len(result.stdout_bytes) < (BIG if path == "/dir/big" else 1)
    # And healthy files still come back
    assert herd(backend, "get-file", "data", "master", "/ok").stdout_bytes == b"fine bytes"


def test_get_file_recursive_never_writes_the_damaged_file(backend: Backend, damaged: dict[str, str], work: Path) -> None:
    message = fails(backend, 8, "get-file", "data", "master", "/dir", "-r", "-o", "out")
    assert damaged["big"] in message and "'/dir/big'" in message
    assert sorted(os.listdir(work / "out")) == []  # /dir/big comes first: nothing written


def test_the_console_script_reports_damage_in_one_line(backend: Backend, damaged: dict[str, str], work: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_"))}
    env.update(backend.env)
    proc = subprocess.run([str(HERD), "get-file", "data", "master", "/bad", "-o", "x"], env=env,
                          cwd=work, capture_output=True, timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 8 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert damaged["bad"] in err and "Traceback" not in err
    assert not (work / "x").exists()


# ---- corrupt records -----------------------------------------------------------------------


def test_corrupt_manifest_and_commit_record_are_one_line_errors(backend: Backend, work: Path) -> None:
    herd(backend, "create-repo", "data")
    herd(backend, "put-file", "data", "master", "/a", input=b"1")
    herd(backend, "put-file", "data", "master", "/b", input=b"2")
    pfs = backend.pfs()
    head = pfs.inspect_commit("data", "master")
    backend.objects.put(manifest_key(head.manifest), b'{"files": {"/a": "x"}}')  # type: ignore[arg-type]
    assert "manifest record" in fails(backend, 8, "list-file", "data", "master")
    assert "manifest record" in fails(backend, 8, "get-file", "data", "master", "/a")
    backend.objects.put(commit_key("data", head.parent), b"\x00\xff")  # type: ignore[arg-type]
    assert "commit record" in fails(backend, 8, "list-commit", "data")


def test_corrupt_job_record_is_a_one_line_error(backend: Backend, work: Path) -> None:
    pfs = backend.pfs()
    pfs.create_repo("in")
    pfs.put_file("in", "master", "/x", b"1")
    (work / "p.json").write_text(
        '{"pipeline": {"name": "p"}, "transform": {"cmd": ["sh", "-c", "cp /pfs/in/x /pfs/out/"]},'
        ' "input": {"pfs": {"repo": "in", "glob": "/"}}}'
    )
    herd(backend, "create-pipeline", "-f", "p.json")
    info_keys = [k for k in backend.objects.list("jobs/") if k.endswith("/info")]
    assert info_keys
    backend.objects.put(info_keys[0], b"{garbage")
    assert "job info record" in fails(backend, 8, "list-job")


# ---- fsck ----------------------------------------------------------------------------------


def test_fsck_on_a_healthy_store_exits_0(backend: Backend, work: Path) -> None:
    herd(backend, "create-repo", "data")
    herd(backend, "put-file", "data", "master", "/a", input=b"1")
    result = herd(backend, "fsck")
    assert result.stdout.startswith("ok: 1 repos, 1 branches, 1 commits") and len(result.stdout.splitlines()) == 1
    assert herd(backend, "fsck", "data").stdout.startswith("ok: 1 repos")


def test_fsck_lists_each_damage_with_the_commits_and_paths_it_affects(
    backend: Backend, damaged: dict[str, str]
) -> None:
    result = herd(backend, "fsck", code=8)
    out = result.stdout.splitlines()
    pfs = backend.pfs()
    commits = [c.id for c in pfs.list_commits("data", "master")]
    # /bad was added in the 2nd commit and lives on in every later one
    bad_lines = [line for line in out if damaged["bad"] in line]
    assert {line.rsplit("affects ", 1)[1] for line in bad_lines} == {f"data@{c}:/bad" for c in commits[:3]}
    assert any(f"data@{commits[0]}:/dir/big" in line for line in out)
    assert all(line.startswith("damaged blob '") for line in out)
    errors = result.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: fsck found 2 damaged")
    assert "error:" in fails(backend, 2, "fsck", "nope") and "'nope'" in fails(backend, 2, "fsck", "nope")


# ---- get-file -r -o DIR: nothing outside DIR, no link followed ------------------------------


def test_get_file_recursive_refuses_escaping_paths_and_planted_links(backend: Backend, work: Path) -> None:
    pfs = backend.pfs()
    pfs.create_repo("data")
    digest, size = BlobStore(backend.objects).put_bytes(b"pwned")
    evil = Manifest(files={"/d/../../escaped": FileEntry(chunks=(digest,), size=size)})
    pfs.commits.commit_on_branch("data", "evil", lambda _base: evil)
    message = fails(backend, 4, "get-file", "data", "evil", "/d", "-r", "-o", "out/deep")
    assert "/d/../../escaped" in message and "outside" in message
    assert not (work / "escaped").exists() and not (work / "out" / "escaped").exists()
    # A symlink planted inside DIR, at a folder and at a file name
    herd(backend, "put-file", "data", "master", "/t/sub/x", input=b"x")
    herd(backend, "put-file", "data", "master", "/t/y", input=b"y")
    (work / "elsewhere").mkdir()
    (work / "dest").mkdir()
    (work / "dest" / "sub").symlink_to(work / "elsewhere")
    assert "symlink" in fails(backend, 4, "get-file", "data", "master", "/t", "-r", "-o", "dest")
    (work / "dest" / "sub").unlink()
    (work / "dest" / "y").symlink_to(work / "elsewhere" / "victim")
    assert "'dest/y' is a symlink" in fails(backend, 4, "get-file", "data", "master", "/t", "-r", "-o", "dest")
    assert os.listdir(work / "elsewhere") == []


# ---- a pipeline whose datum reads damaged bytes --------------------------------------------


def copy_each_file(pfs: Pfs) -> tuple[JobQueries, JobInfo, JobStatus]:
    """Run a pipeline copying every file of repo `in`, one datum each, one try, to its end on
    the embedded default; its job."""
    from scheduler.pipelines import Pipelines

    Pipelines(pfs).create({
        "pipeline": {"name": "copy"},
        "transform": {"cmd": ["sh", "-c", "cp -r /pfs/in/* /pfs/out/"]},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
        "datum_tries": 1,
    })
    settle(pfs, SchedulerSettings(broker=None, parallelism=2))
    jobs = JobQueries(pfs)
    info, status = jobs.list("copy")[0]
    return jobs, info, status


def test_a_datum_reading_damaged_bytes_fails_and_nothing_is_committed_from_them(backend: Backend) -> None:
    # Given an input repo with healthy files, a damaged one, and a two-chunk file damaged in its tail
    pfs = backend.pfs()
    pfs.create_repo("in")
    pfs.put_files("in", "master", [("/good", b"good bytes"), ("/bad", b"bad bytes")])
    pfs.put_file("in", "master", "/appended", b"head ")
    pfs.put_file("in", "master", "/appended", b"tail that rots", append=True)
    _, bad = blob_of(pfs, "in", "/bad")
    _, tail = blob_of(pfs, "in", "/appended", index=1)
    rotten = [flip(backend.objects, blob_key(bad)), flip(backend.objects, blob_key(tail))]
    # When a pipeline copies every file, one datum each
    jobs, info, status = copy_each_file(pfs)
    # Then the two datums reading damaged bytes failed, naming the blob, and the job failed
    assert status.state == JobState.JOB_FAILURE and status.data_failed == 2
    reasons = " ".join(entry["reason"] for datum in status.failed_datums
                       for entry in jobs.logs(None, info.id, datum))
    assert bad in reasons and tail in reasons and "corrupt" in reasons
    # And nothing was committed from the bad bytes: no output files, no blob of the rotten bytes
    out = pfs.inspect_commit("copy", "master")
    assert pfs.read_manifest(out).files == {}
    blobs = BlobStore(backend.objects)
    assert not any(blobs.exists(hashlib.sha256(body).hexdigest()) for body in rotten)
    # And the corrupt read never raised out of the scheduler as anything but a datum failure
    with pytest.raises(DataCorrupted):
        pfs.open_file("in", "master", "/bad").read()


def test_one_damaged_packed_input_fails_its_own_datum_and_no_other(backend: Backend) -> None:
    # Given 40 small input files, stored in one pack, and one byte of one file's slice flipped
    pfs = backend.pfs()
    pfs.create_repo("in")
    pfs.put_files("in", "master", [(f"/f{n:02d}", f"file {n:02d}".encode()) for n in range(40)])
    entry = pfs.read_manifest(pfs.inspect_commit("in", "master")).files["/f17"]
    ((digest, where),) = entry.slices()
    assert where is not None, "small files are packed"
    pack, offset, _ = where
    data = bytearray(backend.objects.get(pack_key(pack)))
    data[offset] ^= 0x01
    backend.objects.put(pack_key(pack), bytes(data))
    # When a pipeline copies every file, one datum each, batches reading the pack ahead
    jobs, info, status = copy_each_file(pfs)
    # Then only the datum of the damaged file failed, naming its chunk; the others ran
    assert status.state == JobState.JOB_FAILURE
    assert (status.data_failed, status.data_processed) == (1, 39)
    (failed,) = status.failed_datums
    assert digest in " ".join(entry["reason"] for entry in jobs.logs(None, info.id, failed))


def test_get_file_with_a_progress_bar_takes_the_same_checks(
    backend: Backend, damaged: dict[str, str], work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the terminal path of get-file (a bar on stderr), forced on under the test runner
    from scheduler.cli import progress

    monkeypatch.setattr(progress, "wanted", lambda *_args, **_kwargs: True)
    # Then a damaged file still fails with exit 8 and leaves no file
    result = herd(backend, "get-file", "data", "master", "/dir/big", "-o", "big.out", code=8)
    assert damaged["big"] in result.stderr and not (work / "big.out").exists()
    assert sorted(os.listdir(work)) == ["big"]
    # And -r stops at the damaged file, refuses a planted link, and writes healthy files
    herd(backend, "get-file", "data", "master", "/dir", "-r", "-o", "dest", code=8)
    assert os.listdir(work / "dest") == []
    herd(backend, "delete-file", "data", "master", "/dir/big")
    (work / "elsewhere").mkdir()
    (work / "dest" / "fine").symlink_to(work / "elsewhere" / "victim")
    result = herd(backend, "get-file", "data", "master", "/dir", "-r", "-o", "dest", code=4)
    assert "symlink" in result.stderr and os.listdir(work / "elsewhere") == []
    (work / "dest" / "fine").unlink()
    herd(backend, "get-file", "data", "master", "/dir", "-r", "-o", "dest")
    assert (work / "dest" / "fine").read_bytes() == b"fine"
