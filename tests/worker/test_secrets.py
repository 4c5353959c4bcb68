"""transform.secrets on a worker: the files it holds under HERD_SECRETS_DIR, handed to user code
as variables (env_var) and never written anywhere herd stores. Real parts: a local store, the
local runtime's sandbox, the embedded scheduler."""

from __future__ import annotations

import copy
import hashlib
import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from scheduler.cli.embedded import settle
from scheduler.job_records import JobState
from scheduler.pipelines import Pipelines
from scheduler.queries import JobQueries
from scheduler.settings import SchedulerSettings
from scheduler.spec import parse_spec
from storage.errors import SecretNotFound
from storage.local import LocalObjectStore
from storage.repos import Pfs
from tests.scheduler.pipeline_helpers import files_of
from worker.secrets import SecretMount, secret_env, secret_mounts, secret_tar
from worker.settings import WorkerSettings

VALUE = "s3cr3t-\u00e9-value"  # never printed by the user code below: it must appear nowhere


def secrets_of(*secrets: dict[str, Any]) -> Any:
    spec = {"pipeline": {"name": "p"}, "transform": {"cmd": ["true"], "secrets": list(secrets)},
            "input": {"pfs": {"repo": "in", "glob": "/"}}}
    return parse_spec(spec).transform.secrets


@pytest.fixture
def held(tmp_path: Path) -> Path:
    """A worker's secrets folder laid out like a mounted Kubernetes secret (keys are links into ..data)."""
    folder = tmp_path / "secrets"
    data = folder / "db" / "..2026_12_01"
    data.mkdir(parents=True)
    (data / "password").write_text(VALUE)
    (data / "user").write_text("admin\n")
    os.symlink("..2026_12_01", folder / "db" / "..data")
    for key in ("password", "user"):
        os.symlink(f"..data/{key}", folder / "db" / key)
    return folder


def test_env_var_secrets_read_the_key_s_file(held: Path) -> None:
    env = secret_env(secrets_of({"name": "db", "env_var": "PW", "key": "password"},
                                {"name": "db", "env_var": "DB_USER", "key": "user"}), str(held))
    assert env == {"PW": VALUE, "DB_USER": "admin\n"}  # exact bytes, as Kubernetes hands them


def test_a_mounted_secret_holds_every_key_and_hides_values_in_repr(held: Path) -> None:
    (mount,) = secret_mounts(secrets_of({"name": "db", "mount_path": "/etc/db"}), str(held))
    assert (mount.name, mount.path, sorted(mount.files)) == ("db", "/etc/db", ["password", "user"])
    assert VALUE not in repr(mount) and VALUE.encode() not in repr(mount).encode()
    (one,) = secret_mounts(secrets_of({"name": "db", "mount_path": "/etc/db", "key": "user"}), str(held))
    assert one.files == {"user": b"admin\n"}


def test_a_mounted_secret_is_a_read_only_tar_for_its_volume() -> None:
    data = secret_tar(SecretMount("db", "/etc/db", {"password": b"x"}), uid=60999)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: (m.type, m.mode, m.uid) for m in tar.getmembers()}  # "/": the volume root
        assert tar.extractfile("password").read() == b"x"  # type: ignore[union-attr]
    assert members == {"": (tarfile.DIRTYPE, 0o555, 60999), "password": (tarfile.REGTYPE, 0o444, 60999)}


@pytest.mark.parametrize(("folder", "secret", "message"), [
    (None, {"name": "db", "env_var": "PW", "key": "password"}, "secret 'db' is not held by this worker: HERD_SECRETS_DIR"),
    ("held", {"name": "nope", "env_var": "PW", "key": "password"}, "secret 'nope' is not held by this worker"),
    ("held", {"name": "db", "env_var": "PW", "key": "missing"}, "secret 'db' key 'missing' is not held"),
    ("held", {"name": "db", "env_var": "PW", "key": "..data"}, "secret 'db' key '..data' is not held"),
    ("held", {"name": "nope", "mount_path": "/etc/x"}, "secret 'nope' is not held by this worker"),
])
def test_a_missing_secret_is_named_and_no_value_is_shown(
    held: Path, folder: str | None, secret: dict[str, Any], message: str,
) -> None:
    with pytest.raises(SecretNotFound, match=message) as caught:
        read = secret_mounts if "mount_path" in secret else secret_env
        read(secrets_of(secret), str(held) if folder else None)
    assert VALUE not in str(caught.value)


def test_a_secret_that_cannot_be_a_variable_is_refused_without_its_value(held: Path) -> None:
    (held / "db" / "..2026_12_01" / "bin").write_bytes(b"\xff\xfe" + VALUE.encode())
    (held / "db" / "..2026_12_01" / "nul").write_bytes(VALUE.encode() + b"\x00")
    for key, why in (("bin", "not UTF-8"), ("nul", "NUL")):
        os.symlink(f"..data/{key}", held / "db" / key)
        with pytest.raises(SecretNotFound, match=why) as caught:
            secret_env(secrets_of({"name": "db", "env_var": "X", "key": key}), str(held))
        assert VALUE not in str(caught.value)


def test_an_empty_or_relative_secrets_dir_setting() -> None:
    assert WorkerSettings(secrets_dir="").secrets_dir is None
    with pytest.raises(ValueError, match="absolute folder"):
        WorkerSettings(secrets_dir="relative/dir")


# Pipelines --------------------------------------------------------------------------------------

SPEC = {
    "pipeline": {"name": "uses-secret"},
    "transform": {
        "cmd": ["sh", "-c", "[ \"$(printf %s \"$PW\" | sha256sum | cut -d' ' -f1)\" = \"$(cat $in)\" ] && "
                            "echo match > /pfs/out/check; echo length ${#PW}"],
        "secrets": [{"name": "db", "env_var": "PW", "key": "password"}],
    },
    "input": {"pfs": {"repo": "in", "glob": "/*"}},
    "datum_tries": 1,
}


def run(tmp_path: Path, spec: dict[str, Any], secrets_dir: Path | None) -> tuple[Pfs, JobQueries, Any, Any]:
    pfs = Pfs(LocalObjectStore(tmp_path / "store"))
    pfs.create_repo("in")
    pfs.put_files("in", "master", [("/expected", hashlib.sha256(VALUE.encode()).hexdigest().encode())])
    Pipelines(pfs).create(copy.deepcopy(spec))
    worker = WorkerSettings(runtime="local", scratch=str(tmp_path / "scratch"),
                            secrets_dir=str(secrets_dir) if secrets_dir else None)
    settle(pfs, SchedulerSettings(broker=None, parallelism=1), worker)
    jobs = JobQueries(pfs)
    info, status = jobs.list(spec["pipeline"]["name"])[0]
    return pfs, jobs, info, status


def stored_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_an_env_var_secret_reaches_user_code_and_nothing_stored(tmp_path: Path, held: Path) -> None:
    # Given an input holding the value's sha256 (user code compares it with the variable's)
    pfs, jobs, info, status = run(tmp_path, SPEC, held)
    # Then user code saw the variable, and the job succeeded
    assert status.state == JobState.JOB_SUCCESS, status.reason
    assert files_of(pfs, "uses-secret") == {"/check": b"match\n"}
    # And the value is nowhere in storage (specs, plans, results, logs), where what it printed is
    stored = stored_bytes(tmp_path / "store")
    assert b'"message":"length ' in stored and VALUE.encode() not in stored


def test_a_missing_secret_fails_the_datum_naming_it(tmp_path: Path, held: Path) -> None:
    spec = copy.deepcopy(SPEC)
    spec["transform"]["secrets"] = [{"name": "db", "env_var": "PW", "key": "passwd"}]
    pfs, jobs, info, status = run(tmp_path, spec, held)
    assert status.state == JobState.JOB_FAILURE
    reasons = " ".join(e["reason"] for d in status.failed_datums for e in jobs.logs(None, info.id, d))
    assert "secret 'db' key 'passwd' is not held by this worker" in reasons
    assert VALUE.encode() not in stored_bytes(tmp_path / "store")


def test_a_worker_without_a_secrets_dir_fails_the_datum(tmp_path: Path) -> None:
    pfs, jobs, info, status = run(tmp_path, SPEC, None)
    assert status.state == JobState.JOB_FAILURE
    reasons = " ".join(e["reason"] for d in status.failed_datums for e in jobs.logs(None, info.id, d))
    assert "HERD_SECRETS_DIR is not set" in reasons


def test_the_local_runtime_refuses_a_mounted_secret_by_name(tmp_path: Path, held: Path) -> None:
    spec = copy.deepcopy(SPEC)
    spec["transform"]["secrets"] = [{"name": "db", "mount_path": "/etc/db"}]
    pfs, jobs, info, status = run(tmp_path, spec, held)
    assert status.state == JobState.JOB_FAILURE
    reasons = " ".join(e["reason"] for d in status.failed_datums for e in jobs.logs(None, info.id, d))
    assert "secret 'db'" in reasons and "cannot mount secrets" in reasons
