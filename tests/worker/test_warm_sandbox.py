"""One sandbox serves a whole session: what one datum does must never reach the next one.

ProcessRuntime keeps one runner (worker/sandbox_init.py) per session and starts every datum
from it, so these tests run several datums through ONE session, as a worker does, and attack
from one datum what the following ones see.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.worker.processes import processes_running, unique_sleep, wait_until
from tests.worker.sandboxes import ALL_MODES, NAMESPACES, mode_id, require
from worker.process_runtime import Isolation, ProcessRuntime, ProcessSession
from worker.runtime import RunRequest, RunResult, UserCode
from worker.staging import clear_pfs


class Datums:
    """One session and a fresh datum folder per run, as the worker lays them out."""

    def __init__(self, mode: Isolation, root: Path, cmd: tuple[str, ...], **transform: object) -> None:
        self.root = root
        self.session: ProcessSession = ProcessRuntime(mode).open("warm", UserCode(image="", cmd=cmd, **transform))  # type: ignore[arg-type]
        self.count = 0

    def run(self, env: dict[str, str] | None = None, timeout: float | None = None) -> tuple[RunResult, Path]:
        self.count += 1
        folder = self.root / f"datum{self.count}"
        (folder / "in").mkdir(parents=True)
        (folder / "out").mkdir()
        (folder / "in" / "x").write_text(f"input {self.count}\n")
        return self.session.run(RunRequest(pfs_dir=folder, env=env or {}, timeout=timeout)), folder


@pytest.fixture
def datums(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Datums]]:
    made: list[Datums] = []

    def make(cmd: tuple[str, ...], **transform: object) -> Datums:
        made.append(Datums(require(request.param), tmp_path, cmd, **transform))
        return made[-1]

    yield make
    for item in made:
        item.session.close()
    clear_pfs(tmp_path)


def sh(script: str) -> tuple[str, ...]:
    return ("sh", "-c", script)


@pytest.mark.parametrize("datums", NAMESPACES, indirect=True, ids=mode_id)
def test_user_code_holds_no_capability_and_cannot_gain_one(datums: Callable[..., Datums]) -> None:
    # Given user code running as uid 0 in the session sandbox
    result, _ = datums(sh("grep -E '^(Cap|NoNewPrivs)' /proc/self/status")).run()
    # Then every capability set is empty and no exec can add one
    status = dict(line.split(":\t") for line in result.stdout.decode().splitlines())
    assert {name: value for name, value in status.items() if name.startswith("Cap")} == {
        "CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
        "CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
    }
    assert status["NoNewPrivs"] == "1"


@pytest.mark.parametrize("datums", NAMESPACES, indirect=True, ids=mode_id)
def test_each_datum_sees_only_its_own_pfs_tmp_and_shm(datums: Callable[..., Datums]) -> None:
    # Given datums of one session that each read what is there, then leave files everywhere
    # they may write (and try the places they may not)
    script = (
        "cat /pfs/in/x; ls -A /tmp /dev/shm /pfs/out | tr '\\n' ' '; echo; "
        "touch /tmp/left /dev/shm/left /pfs/out/mine /dev/left /left /pfs/left 2>/dev/null; true"
    )
    session = datums(sh(script))
    (first, first_dir), (second, second_dir) = session.run(), session.run()
    # Then each saw its own input and empty /tmp, /dev/shm and /pfs/out
    for result, number in ((first, 1), (second, 2)):
        assert result.exit_code == 0, result.stderr
        lines = result.stdout.decode().splitlines()
        assert lines[0] == f"input {number}"
        assert lines[1].split() == ["/dev/shm:", "/pfs/out:", "/tmp:"]
    # And only /pfs/out kept what it wrote, in its own folder
    assert sorted(os.listdir(first_dir / "out")) == ["mine"] and sorted(os.listdir(second_dir / "out")) == ["mine"]
    assert sorted(os.listdir(first_dir)) == ["in", "out"]


@pytest.mark.parametrize("datums", ALL_MODES, indirect=True, ids=mode_id)
def test_no_process_of_a_datum_is_left_when_run_returns(datums: Callable[..., Datums]) -> None:
    # Given a datum whose user code leaves a process in a session of its own, a double fork and
    # a process that ignores SIGTERM, then exits
    token = unique_sleep()
    script = (
        f"setsid sleep {token} & (sleep {token} &) & sh -c 'trap \"\" TERM HUP; sleep {token}' & "
        "sleep 0.2; echo started"
    )
    session = datums(sh(script))
    result, _ = session.run()
    # Then when run returns, none of them is alive, and the session runs the next datum
    assert result.exit_code == 0 and result.stdout == b"started\n", result.stderr
    assert processes_running(token) == []
    assert session.run()[0].exit_code == 0


@pytest.mark.parametrize("datums", ALL_MODES, indirect=True, ids=mode_id)
def test_a_timed_out_datum_leaves_the_session_usable(datums: Callable[..., Datums]) -> None:
    token = unique_sleep()
    session = datums(sh(f'if [ "$FIRST" = 1 ]; then sleep {token} & sleep {token}; fi; cat /pfs/in/x'))
    timed_out, _ = session.run(env={"FIRST": "1"}, timeout=0.5)
    assert timed_out.timed_out and timed_out.exit_code == 137
    assert processes_running(token) == []
    after, _ = session.run()
    assert after.exit_code == 0 and after.stdout == b"input 2\n"


@pytest.mark.parametrize("datums", NAMESPACES, indirect=True, ids=mode_id)
def test_user_code_cannot_reach_the_runner(datums: Callable[..., Datums]) -> None:
    # Given user code that tries to read the runner's open files (its socket to the worker,
    # the datum folders it is handed), its memory and root, and to signal or stop it
    script = (
        "for p in /proc/[0-9]*; do [ \"$p\" = /proc/$$ ] && continue; "
        "ls -l $p/fd/ 2>/dev/null | grep -q socket && echo \"reached $p/fd\"; "
        "head -c1 $p/mem >/dev/null 2>&1 && echo \"reached $p/mem\"; "
        "ls $p/root/ >/dev/null 2>&1 && echo \"reached $p/root\"; done; "
        "kill -STOP 1; kill -TERM 1; kill -INT 1; kill -KILL -1; echo done"
    )
    session = datums(sh(script))
    result, _ = session.run()
    # Then it reached none of them, and the session still runs datums
    assert b"reached" not in result.stdout, result.stdout
    assert session.run()[0].exit_code == 0


@pytest.mark.parametrize("datums", ALL_MODES, indirect=True, ids=mode_id)
def test_a_runner_that_died_between_datums_is_replaced(datums: Callable[..., Datums]) -> None:
    # Given a session whose runner died after a datum (e.g. the thread that started it ended)
    session = datums(sh("cat /pfs/in/x"))
    assert session.run()[0].exit_code == 0
    runner = session.session._runner
    assert runner is not None
    os.killpg(runner.proc.pid, 9)
    runner.proc.wait()
    # When the next datum runs, Then it runs in a new runner
    result, _ = session.run()
    assert result.exit_code == 0 and result.stdout == b"input 2\n", result.stderr


@pytest.mark.parametrize("datums", ALL_MODES, indirect=True, ids=mode_id)
def test_datums_started_by_a_thread_that_ended_still_run(datums: Callable[..., Datums]) -> None:
    # Given a session whose first datum ran in a thread that has ended since (the runner dies
    # with the thread that started it: PR_SET_PDEATHSIG)
    session = datums(sh("cat /pfs/in/x"))
    thread = threading.Thread(target=session.run)
    thread.start()
    thread.join()
    time.sleep(0.1)
    # When another thread runs the next datum, Then it runs
    result, _ = session.run()
    assert result.exit_code == 0 and result.stdout == b"input 2\n", result.stderr


@pytest.mark.parametrize("datums", ALL_MODES, indirect=True, ids=mode_id)
def test_closing_an_idle_session_leaves_no_process(datums: Callable[..., Datums]) -> None:
    session = datums(sh("true"))
    session.run()
    runner = session.session._runner
    assert runner is not None
    session.session.close()
    wait_until(lambda: runner.proc.poll() is not None)


HOLDER = """
import sys
from pathlib import Path
from worker.process_runtime import ProcessRuntime
from worker.runtime import RunRequest, UserCode
mode, folder, token = sys.argv[1:]
session = ProcessRuntime(mode).open("p", UserCode(image="", cmd=("sh", "-c", f"sleep {token} & setsid sleep {token} & sleep {token}")))
session.run(RunRequest(pfs_dir=Path(folder), env={}))
"""


@pytest.mark.parametrize("mode", ALL_MODES, ids=mode_id)
def test_sigkill_of_the_worker_leaves_no_process_of_the_datum(mode: Isolation, tmp_path: Path) -> None:
    require(mode)
    # Given a worker process running a datum whose user code started more processes (one in
    # a session of its own), in every mode, rewrite included
    token = unique_sleep()
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    worker = subprocess.Popen([sys.executable, "-c", HOLDER, mode.value, str(tmp_path), token],
                              cwd=Path(__file__).parents[2], start_new_session=True)
    try:
        wait_until(lambda: len(processes_running(token)) == 3, timeout=30)
        # When the worker is killed outright
        worker.kill()
        worker.wait()
        # Then every process of the datum is gone
        wait_until(lambda: processes_running(token) == [], timeout=5)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
