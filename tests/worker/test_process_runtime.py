"""ProcessRuntime with real processes, in every isolation mode this machine supports: what is
particular to it (sandboxes, process groups, users). What every runtime does is in
test_runtime_contract.py."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from storage.errors import InvalidArgument
from tests.fixtures.services import missing_service
from tests.worker.processes import processes_running, unique_sleep, wait_until
from tests.worker.sandboxes import ALL_MODES, NAMESPACES, mode_id, require, require_root
from worker import process_runtime
from worker.process_io import RunCancelled
from worker.process_runtime import Isolation, ProcessRuntime, ProcessSession, detect_isolation
from worker.runtime import RunRequest, RunResult, UserCode

# Every mode always runs: one this machine cannot start skips locally and fails under CI.
NAMESPACED = pytest.mark.parametrize("mode", NAMESPACES, indirect=True, ids=mode_id)


@pytest.fixture(params=ALL_MODES, ids=mode_id)
def mode(request: pytest.FixtureRequest) -> Isolation:
    return require(request.param)


@pytest.fixture
def pfs(tmp_path: Path) -> Path:
    """A datum folder as staging lays it out: /pfs/in/x and an empty out/."""
    folder = tmp_path / "pfs"
    (folder / "in" / "sub").mkdir(parents=True)
    (folder / "in" / "x").write_text("hello\n")
    (folder / "in" / "sub" / "y").write_text("why\n")
    (folder / "out").mkdir()
    return folder


def run(mode: Isolation, pfs: Path, cmd: tuple[str, ...], timeout: float | None = None, **kw: object) -> RunResult:
    session = ProcessRuntime(mode).open("pipe", UserCode(image="", cmd=cmd, **kw))  # type: ignore[arg-type]
    try:
        return session.run(RunRequest(pfs_dir=pfs, env={"PACH_JOB_ID": "j1", "in": "/pfs/in/x"}, timeout=timeout))
    finally:
        session.close()


def sh(script: str) -> tuple[str, ...]:
    return ("sh", "-c", script)


def test_this_machine_has_a_mount_namespace() -> None:
    # Given bwrap installed (the reference machine), When probing, Then bwrap is chosen.
    require(Isolation.BWRAP)
    assert detect_isolation() is Isolation.BWRAP


@NAMESPACED
def test_inputs_are_read_only(mode: Isolation, pfs: Path) -> None:
    result = run(mode, pfs, sh("echo bad > /pfs/in/x; echo bad > /pfs/in/new; rm -f /pfs/in/sub/y; touch /pfs/out/ok"))
    assert b"Read-only file system" in result.stderr
    assert (pfs / "in" / "x").read_text() == "hello\n"
    assert not (pfs / "in" / "new").exists() and (pfs / "in" / "sub" / "y").exists()
    assert (pfs / "out" / "ok").exists()


def test_rewrite_mode_never_writes_through_a_hard_link(pfs: Path, tmp_path: Path) -> None:
    # Given an input hard-linked to a "blob" (staging's fast path), When user code overwrites it
    blob = tmp_path / "blob"
    blob.write_text("precious\n")
    os.link(blob, pfs / "in" / "linked")
    result = run(Isolation.REWRITE, pfs, sh("echo clobbered > /pfs/in/linked"))
    # Then the datum's copy changed, the blob did not
    assert result.exit_code == 0
    assert blob.read_text() == "precious\n"
    assert (pfs / "in" / "linked").read_text() == "clobbered\n"


def test_env_starts_from_the_sandbox_base(mode: Isolation, pfs: Path) -> None:
    # (the transform's and the request's env on top: test_runtime_contract.py)
    env = dict(line.split("=", 1) for line in run(mode, pfs, ("env",)).stdout.decode().splitlines())
    assert env["HOME"] == "/tmp" and env["LANG"] == "C.UTF-8" and "/usr/bin" in env["PATH"]


@pytest.mark.parametrize("name", ["NUL\x00"])  # "A=B" and "": test_runtime_contract.py
def test_env_names_execve_cannot_take_are_refused(pfs: Path, name: str) -> None:
    with pytest.raises(InvalidArgument, match="environment variable name"):
        run(Isolation.REWRITE, pfs, ("true",), env={name: "x"})


def test_missing_program_is_exit_127(mode: Isolation, pfs: Path) -> None:
    result = run(mode, pfs, ("/no/such/program",))
    assert result.exit_code == (1 if mode is Isolation.BWRAP else 127)  # bwrap itself reports 1
    assert b"/no/such/program" in result.stderr


def test_default_working_dir_is_the_root(mode: Isolation, pfs: Path) -> None:
    # (a working_dir set in the transform: test_runtime_contract.py)
    assert run(mode, pfs, ("pwd",)).stdout.strip() == b"/"


def test_timeout_kills_the_process_group(mode: Isolation, pfs: Path) -> None:
    # Given user code that would sleep for a minute, with a child sleeping too
    token = unique_sleep()
    # When its timeout passes (bench/runtime_local.py measures how soon the kill comes)
    result = run(mode, pfs, sh(f"sleep {token} & sleep {token}; echo never"), timeout=0.5)
    # Then it was killed, and so was its child: no process of the datum is left
    assert result.timed_out and result.exit_code == 137
    assert b"never" not in result.stdout
    wait_until(lambda: not processes_running(token))


def test_background_children_do_not_outlive_the_datum(mode: Isolation, pfs: Path) -> None:
    # Given user code that leaves a child holding stdout, When the leader exits
    token = unique_sleep()
    result = run(mode, pfs, sh(f"(sleep {token}; echo late > /pfs/out/late) & echo done"))
    # Then run returns without waiting for the child (its minute of sleep), the child is
    # killed, and it never writes to /pfs/out
    assert result.exit_code == 0 and result.stdout == b"done\n"
    wait_until(lambda: not processes_running(token))
    assert not (pfs / "out" / "late").exists()


def test_close_from_another_thread_kills_a_running_datum(mode: Isolation, pfs: Path) -> None:
    # Given a datum that would sleep for a minute, its child in a session of its own
    token = unique_sleep()
    session = ProcessRuntime(mode).open("pipe", UserCode(image="", cmd=sh(f"setsid sleep {token} & sleep {token}")))
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(_run_catching(session, pfs)))
    thread.start()
    wait_until(lambda: len(processes_running(token)) == 2)
    # When the session is closed (what Ctrl-C of the CLI does)
    session.close()
    thread.join(timeout=5)
    # Then run stops with RunCancelled (no result to store) and no process of the datum is left
    assert not thread.is_alive() and isinstance(outcome[0], RunCancelled)
    wait_until(lambda: not processes_running(token))
    with pytest.raises(RunCancelled):
        session.run(RunRequest(pfs_dir=pfs, env={}))


def _run_catching(session: ProcessSession, pfs: Path) -> object:
    try:
        return session.run(RunRequest(pfs_dir=pfs, env={}))
    except RunCancelled as exc:
        return exc


def test_runs_as_the_transform_user(mode: Isolation, pfs: Path) -> None:
    require_root("switching users")
    with tempfile.TemporaryDirectory() as shared:
        if mode is Isolation.REWRITE:
            # Without a namespace the real path is used, so every folder above it must be
            # traversable by the user: pytest's own tmp folders are private to root.
            os.chmod(shared, 0o755)
            pfs = Path(shutil.copytree(pfs, Path(shared) / "pfs"))
            os.chmod(pfs / "out", 0o777)
            for folder in [pfs, *pfs.parents]:
                if folder.stat().st_mode & 0o001 == 0:
                    missing_service(f"'{folder}' (the temporary folder) is not traversable by other users")
        result = run(mode, pfs, sh("id -u; echo hi > /pfs/out/mine"), user="nobody")
        assert result.exit_code == 0, result.stderr
        assert result.stdout.strip() == b"65534"
        assert (pfs / "out" / "mine").stat().st_uid == 65534


def test_rewrite_mode_warns_once(pfs: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process_runtime, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="worker.process_runtime"):
        for _ in range(3):
            ProcessRuntime("rewrite").open("pipe", UserCode(image="", cmd=("true",))).close()
    warnings = [r for r in caplog.records if "rewritten" in r.getMessage()]
    assert len(warnings) == 1


def test_rewrite_only_touches_pfs_paths(pfs: Path) -> None:
    rewrite = process_runtime._rewriter(pfs)
    assert rewrite("cat /pfs/in/x > /pfs/out/y") == f"cat {pfs}/in/x > {pfs}/out/y"
    assert rewrite("--dir=/pfs") == f"--dir={pfs}"
    assert rewrite("/data/pfs/x /pfsx ./pfs/a") == "/data/pfs/x /pfsx ./pfs/a"


@NAMESPACED
def test_network_off_leaves_only_loopback(mode: Isolation, pfs: Path) -> None:
    interfaces = run(mode, pfs, sh("tail -n +3 /proc/net/dev | cut -d: -f1"), network=False).stdout.split()
    assert interfaces == [b"lo"]
    assert len(run(mode, pfs, sh("tail -n +3 /proc/net/dev"), network=True).stdout.splitlines()) >= 1
