"""User code misbehaving in its container (fault matrix row 5, runtime level), on a real engine.

Each fault must end the datum with its cause named (a RunResult flag, an error, or the logs),
leave nothing of the datum's output on the worker, and leave the session able to run the next
datum (in the same warm container where the fault allows, in a fresh one otherwise). The
Docker engine itself misbehaving is an outage (EngineUnavailable), never the datum's fault.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

import docker
import pytest

from storage.errors import EngineUnavailable, OutputQuotaExceeded, UserCodeError
from tests.fixtures.docker import herd_containers
from tests.fixtures.services import missing_service, wait_until
from tests.worker.written import written
from worker.docker_runtime import DockerRuntime, DockerSession
from worker.docker_wire import SCRATCH
from worker.process_io import RunCancelled
from worker.runtime import RunRequest

pytestmark = pytest.mark.docker

TRANSFERS = ("stream", "archive")
MiB = 1024 * 1024


@pytest.fixture
def pfs(tmp_path: Path) -> Path:
    root = tmp_path / "pfs"
    (root / "in").mkdir(parents=True)
    (root / "in" / "a.txt").write_text("alpha\n")
    (root / "out").mkdir()
    return root


def run_in_background(session: DockerSession, req: RunRequest) -> tuple[threading.Thread, list[Any]]:
    """Run one datum on a thread, as a worker does; the list gets its result or exception."""
    outcome: list[Any] = []

    def datum() -> None:
        try:
            outcome.append(session.run(req))
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    thread = threading.Thread(target=datum)
    thread.start()
    return thread, outcome


def request(pfs: Path, datum: str = "ok", timeout: float | None = 60) -> RunRequest:
    return RunRequest(pfs_dir=pfs, env={"PACH_JOB_ID": "job1", "PACH_DATUM_ID": datum}, timeout=timeout)


def empty_out(pfs: Path) -> None:
    for entry in (pfs / "out").iterdir():
        entry.unlink()


def nothing_kept(pfs: Path) -> bool:
    """No byte of the datum's output on the worker: out/ empty, the scratch folder empty."""
    files = [p for p in (pfs / "out").rglob("*")] + [p for p in (pfs / SCRATCH).rglob("*") if p.is_file()]
    return not files


# Each datum counts the processes its container holds (a glob: no process of its own), then
# writes one output file.
NEXT = ('n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n > /pfs/out/procs; '
        'echo "$PACH_DATUM_ID" > /pfs/out/name')


@pytest.mark.parametrize("transfer", TRANSFERS)
def test_out_of_memory_is_named_and_the_container_goes_on(open_session, pfs: Path, transfer: str) -> None:
    # Given user code that allocates 256 MiB under a 48 MiB memory limit
    script = f'[ "$PACH_DATUM_ID" != big ] || exec dd if=/dev/zero of=/dev/null bs=256M count=1; {NEXT}'
    session = open_session(script, transfer=transfer, memory=48 * MiB)
    container = session.container_id
    # When the datum runs
    result = session.run(request(pfs, "big"))
    # Then the kernel's kill is reported as such, and nothing of the datum is kept
    assert result.oom_killed and result.exit_code == 137 and not result.timed_out
    assert nothing_kept(pfs)
    # And the next datum runs in the same warm container
    later = session.run(request(pfs, "next"))
    assert (later.exit_code, later.oom_killed) == (0, False)
    assert written(later, pfs)["name"] == b"next\n"
    assert session.container_id == container and session.containers_started == 1


def test_out_of_memory_survived_by_user_code_is_not_a_failure(open_session, pfs: Path) -> None:
    # A child killed for memory while the cmd itself recovers and exits 0: the datum succeeded.
    session = open_session("dd if=/dev/zero of=/dev/null bs=256M count=1 || echo recovered", memory=48 * MiB)
    result = session.run(request(pfs))
    assert (result.exit_code, result.oom_killed, result.stdout) == (0, False, b"recovered\n")


@pytest.mark.parametrize("transfer", TRANSFERS)
def test_a_fork_bomb_stops_at_the_pids_limit(open_session, pfs: Path, transfer: str) -> None:
    # Given a fork bomb under a pids limit of 64, and a datum timeout
    bomb = 'b() { b | b & }; b; sleep 2; echo bombed > /pfs/out/x; exit 3'
    script = f'if [ "$PACH_DATUM_ID" = bomb ]; then {bomb}; fi; {NEXT}'
    session = open_session(script, transfer=transfer, runtime_args={"pids_limit": 64})
    container = session.container_id
    baseline = session.run(request(pfs, "first"))
    procs = int(written(baseline, pfs)["procs"])
    empty_out(pfs)
    assert baseline.exit_code == 0
    # When the bomb goes off
    result = session.run(request(pfs, "bomb", timeout=20))
    # Then the datum fails, its logs name the pids limit
    assert result.exit_code != 0 or result.timed_out
    assert b"pids limit" in result.stderr
    # And every process of it is gone: the next datum sees as many as before the bomb
    empty_out(pfs)
    later = session.run(request(pfs, "next"))
    # (one more is tolerated: in archive mode the previous `docker exec` may still be reaped; a
    # leftover of the bomb would be dozens, up to the limit of 64)
    assert later.exit_code == 0 and int(written(later, pfs)["procs"]) <= procs + 1
    assert session.container_id == container


@pytest.mark.parametrize("transfer", TRANSFERS)
def test_output_past_the_quota_is_refused_and_nothing_is_kept(open_session, pfs: Path, transfer: str) -> None:
    # Given a quota of 1 MB and a datum that fills /pfs/out with 8 files of 1 MB
    fill = "i=0; while [ $i -lt 8 ]; do head -c 1000000 /dev/zero > /pfs/out/f$i; i=$((i+1)); done"
    exact = "head -c 1000000 /dev/urandom > /pfs/out/exactly"
    script = f'case $PACH_DATUM_ID in fill) {fill} ;; exact) {exact} ;; esac; echo "$PACH_DATUM_ID"'
    session = open_session(script, transfer=transfer, runtime_args={"output_quota": 1_000_000})
    # When it runs, the quota is named and not one output file reaches the worker's folder
    with pytest.raises(OutputQuotaExceeded, match="quota of 1000000 bytes") as caught:
        session.run(request(pfs, "fill"))
    assert "HERD_OUTPUT_QUOTA" in str(caught.value) and isinstance(caught.value, UserCodeError)
    assert nothing_kept(pfs)
    # And the next datum, exactly at the quota, runs (in a fresh container: the full one is gone)
    result = session.run(request(pfs, "exact"))
    assert result.exit_code == 0 and len(written(result, pfs)["exactly"]) == 1_000_000
    assert session.containers_started == 2


@pytest.mark.parametrize("transfer", TRANSFERS)
def test_a_hang_with_a_timeout_is_killed_and_the_container_goes_on(open_session, pfs: Path, transfer: str) -> None:
    session = open_session(f'[ "$PACH_DATUM_ID" != hang ] || {{ sleep 600 & sleep 600; }}; {NEXT}', transfer=transfer)
    container = session.container_id
    result = session.run(request(pfs, "hang", timeout=1.0))
    assert result.timed_out and result.exit_code == 137 and nothing_kept(pfs)
    later = session.run(request(pfs, "next"))
    assert later.exit_code == 0 and session.container_id == container


@pytest.mark.parametrize("transfer", TRANSFERS)
def test_a_hang_without_a_timeout_ends_when_the_session_is_closed(
    open_session, docker_client, pfs: Path, transfer: str
) -> None:
    # Given a datum that never ends and has no datum_timeout, running on a worker thread
    session = open_session(f'[ "$PACH_DATUM_ID" != hang ] || {{ echo started; sleep 100000; }}; {NEXT}',
                           transfer=transfer)
    container = session.container_id
    thread, outcome = run_in_background(session, request(pfs, "hang", timeout=None))
    assert wait_until(lambda: _sleeping(docker_client, container), timeout=30), "user code never started"
    # When another thread (the worker's lease thread on stop-job) closes the session
    session.close()
    thread.join(timeout=60)
    # Then user code ends with its container, and the datum is not judged
    assert not thread.is_alive() and len(outcome) == 1
    assert isinstance(outcome[0], RunCancelled), outcome
    assert nothing_kept(pfs)
    # And the session runs the next datum in a new container
    later = session.run(request(pfs, "next"))
    assert later.exit_code == 0 and session.containers_started == 2 and session.container_id != container


def test_a_worker_dying_mid_datum_leaves_no_container(open_session, docker_client, pfs: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a datum that never ends (no timeout)
    session = open_session('echo started; sleep 100000')
    container = session.container_id
    monkeypatch.setattr(session, "close", lambda: None)  # a dead worker removes nothing
    outcome: list[BaseException | object] = []

    def datum() -> None:
        try:
            outcome.append(session.run(request(pfs, timeout=None)))
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    thread = threading.Thread(target=datum)
    thread.start()
    assert wait_until(lambda: _sleeping(docker_client, container), timeout=30), "user code never started"
    # When the worker's streams close, as when its process is SIGKILLed
    for channel in (session._runner, session._stager):
        channel.close()
    thread.join(timeout=60)
    # Then the runner ends user code and itself, and the engine removes the container
    def gone() -> bool:
        return not docker_client.containers.list(all=True, filters={"id": container})

    assert wait_until(gone, timeout=30), "the container outlived its worker"
    monkeypatch.undo()
    session.container_id = None


def _sleeping(client: Any, container_id: str | None) -> bool:
    try:
        top = client.api.top(container_id)
    except docker.errors.APIError:
        return False
    return any("100000" in " ".join(row) for row in top.get("Processes") or [])


@pytest.mark.parametrize("transfer", TRANSFERS)
def test_writes_outside_pfs_out_fail_and_change_nothing(open_session, pfs: Path, transfer: str) -> None:
    # Given user code that tries every place but /pfs/out, and fails if any write succeeds
    targets = ["/pfs/evil", "/pfs/in/a.txt", "/pfs/in/new", "/etc/evil", "/evil", "/.herd/bin/runner.sh",
               "/.herd/w/evil-dir/x"]
    tries = "; ".join(f"if echo pwned > {t}; then echo WROTE {t}; fi" for t in targets)
    session = open_session(f"{tries}; mkdir /pfs/in/d && echo WROTE dir; grep -q WROTE /pfs/out/* 2>/dev/null; "
                           "echo fine > /pfs/out/ok; exit 1", transfer=transfer, user="1000:1000")
    before = sorted(str(p.relative_to(pfs)) for p in pfs.rglob("*"))
    result = session.run(request(pfs))
    assert result.exit_code == 1 and b"WROTE" not in result.stdout, result.stdout
    assert result.stderr.count(b"Permission denied") + result.stderr.count(b"Read-only file system") >= len(targets)
    # The inputs on the worker are untouched; the one file the datum may write is its output
    assert (pfs / "in" / "a.txt").read_text() == "alpha\n"
    after = sorted(str(p.relative_to(pfs)) for p in pfs.rglob("*") if SCRATCH not in str(p))
    assert after == before and written(result, pfs) == {"ok": b"fine\n"}
    # And a second datum sees clean inputs (nothing any datum tried to add)
    empty_out(pfs)
    again = session.run(request(pfs, "again"))
    assert b"WROTE" not in again.stdout and session.containers_started == 1


def test_engine_errors_on_our_own_container_are_engine_unavailable(docker_client, docker_worker_id: str) -> None:
    runtime = DockerRuntime(docker_client, worker_id=docker_worker_id)
    with pytest.raises(EngineUnavailable, match="copy into herd's container"):
        with runtime.engine_errors("copy into herd's container"):
            docker_client.api.put_archive("herd-no-such-container-" + docker_worker_id, "/pfs", b"")
    # with an image, the spec's own problem stays the user's
    with pytest.raises(UserCodeError, match="image 'img:1'"):
        with runtime.engine_errors("start the container", "img:1"):
            docker_client.api.put_archive("herd-no-such-container-" + docker_worker_id, "/pfs", b"")


class _SocketRelay:
    """A unix socket in front of the engine's that the test can cut: every connection dies."""

    def __init__(self, target: str, path: Path) -> None:
        self.target, self.path = target, str(path)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(64)
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for end in (lambda: dst.shutdown(socket.SHUT_WR),):
            try:
                end()
            except OSError:
                pass

    def cut(self) -> None:
        """The engine goes away: refuse new connections, drop every open one."""
        self._server.close()
        os.unlink(self.path)
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


def test_engine_gone_mid_datum_is_engine_unavailable(open_session, docker_client, pfs: Path, tmp_path: Path) -> None:
    # Given a session whose engine connection goes through a relay we can cut
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        missing_service("the relay needs the Docker engine on a unix socket (DOCKER_HOST=unix://...)")
    relay = _SocketRelay(host.removeprefix("unix://"), tmp_path / "engine.sock")
    client = docker.DockerClient(base_url=f"unix://{relay.path}", timeout=5)
    session = open_session('[ "$PACH_DATUM_ID" != slow ] || sleep 100000; echo hi', client=client)
    container = session.container_id
    thread, outcome = run_in_background(session, request(pfs, "slow"))
    assert wait_until(lambda: _sleeping(docker_client, container), timeout=30), "user code never started"
    # When the engine stops answering
    relay.cut()
    thread.join(timeout=60)
    # Then the datum meets an outage (not a user-code error), which names the engine
    assert len(outcome) == 1 and isinstance(outcome[0], EngineUnavailable), outcome
    assert relay.path in str(outcome[0]) or "Docker engine" in str(outcome[0])
    # And the container does not outlive the lost connection: its runner sees its input close and
    # ends, and the engine removes it (auto-remove); the test only helps if it lingers
    def gone() -> bool:
        left = herd_containers(docker_client, session.runtime.worker_id)
        for leftover in left:
            try:
                docker_client.api.remove_container(leftover.id, force=True, v=True)
            except docker.errors.APIError:
                pass  # already being removed (409) or gone (404)
        return not left

    assert wait_until(gone, timeout=60), f"container {container} of the lost session is still there"
