"""The Runtime/Session contract (worker/runtime.py), one set of cases run over every runtime:
the fake (tests/worker/fake_runtime.py), the local process runtime in each isolation mode, and
the Docker runtime (real engine, busybox image, both transfers of /pfs).

What every runtime promises: user code runs with its stdin; it sees its inputs under
/pfs/<input>; what it writes to /pfs/out is in `<pfs_dir>/out` after `run` or in the result's
`outputs` (Docker reads a small archive of it in memory); the exit code and the
(bounded) stdout/stderr tails are in the RunResult; the transform's env and the request's reach
it (the request's win), the worker's own do not; a timeout kills it and the session goes on; one
session runs many datums, each seeing only its own inputs. Runtime-specific behaviour (sandbox
modes, containers, limits, faults) stays in test_process_runtime.py, test_docker_runtime.py
and test_docker_faults.py.

The fake runs a Python function in place of the command: each case gives the Python twin of
its shell script. Cases a function cannot honour (a shell, a timeout, execve's rules) skip on
the fake, saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from storage.errors import InvalidArgument
from tests.worker.fake_runtime import FakeCall, FakeRuntime
from tests.worker.sandboxes import require
from tests.worker.written import written
from worker.process_runtime import Isolation, ProcessRuntime
from worker.runtime import LOG_TAIL_BYTES, RunRequest, RunResult, Session, UserCode
from worker.staging import clear_pfs

Twin = Callable[[FakeCall], RunResult]

RUNTIMES = [
    "fake",
    "local-bwrap",
    "local-unshare",
    "local-rewrite",
    pytest.param("docker-stream", marks=pytest.mark.docker),
    pytest.param("docker-archive", marks=pytest.mark.docker),
]
B_BIN = bytes(range(256)) * 4


@dataclass
class Harness:
    """Opens sessions of one runtime; all are closed after the test."""

    kind: str  # "fake" | "local" | "docker"
    name: str
    make: Callable[..., Session]  # make(cmd, twin, **UserCode fields)
    rewrites: bool = False  # user code sees the real folder, not /pfs (the rewrite sandbox)

    def open(self, cmd: tuple[str, ...] | str, twin: Twin | None = None, **fields: Any) -> Session:
        argv = ("sh", "-c", cmd) if isinstance(cmd, str) else cmd
        return self.make(argv, twin, **fields)

    def not_for_fake(self, why: str) -> None:
        if self.kind == "fake":
            pytest.skip(f"not for the fake runtime: {why}")

    def seen(self, pfs: Path, path: str) -> str:
        """How user code sees `/pfs/<path>`."""
        return f"{pfs}/{path}" if self.rewrites else f"/pfs/{path}"


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> Iterator[Harness]:
    name: str = request.param
    if name.startswith("docker-"):
        open_session = request.getfixturevalue("open_session")
        transfer = name.removeprefix("docker-")

        def docker(argv: tuple[str, ...], twin: Twin | None, **fields: Any) -> Session:
            return open_session(argv, transfer=transfer, **fields)  # type: ignore[no-any-return]

        yield Harness("docker", name, docker)
        return
    sessions: list[Session] = []
    if name == "fake":

        def fake(argv: tuple[str, ...], twin: Twin | None, **fields: Any) -> Session:
            assert twin is not None, "a case run on the fake needs the Python twin of its command"
            session = FakeRuntime(twin).open("pipe", UserCode(image="", cmd=argv, **fields))
            sessions.append(session)
            return session

        yield Harness("fake", name, fake)
    else:
        mode = require(Isolation(name.removeprefix("local-")))

        def local(argv: tuple[str, ...], twin: Twin | None, **fields: Any) -> Session:
            session = ProcessRuntime(mode).open("pipe", UserCode(image="", cmd=argv, **fields))
            sessions.append(session)
            return session

        yield Harness("local", name, local, rewrites=mode is Isolation.REWRITE)
    for session in sessions:
        session.close()


@pytest.fixture
def pfs(tmp_path: Path) -> Path:
    """A datum folder as staging lays it out: in/a.txt, in/sub dir/b.bin (binary, a space in
    its folder's name) and an empty out/."""
    root = tmp_path / "pfs"
    (root / "in" / "sub dir").mkdir(parents=True)
    (root / "in" / "a.txt").write_text("alpha\n")
    (root / "in" / "sub dir" / "b.bin").write_bytes(B_BIN)
    (root / "out").mkdir()
    return root


def request(pfs: Path, timeout: float | None = 30, **env: str) -> RunRequest:
    return RunRequest(pfs_dir=pfs, env={"PACH_JOB_ID": "job1", "PACH_DATUM_ID": "d1", **env}, timeout=timeout)


def done(exit_code: int = 0, stdout: bytes = b"", stderr: bytes = b"") -> RunResult:
    return RunResult(exit_code=exit_code, stdout=stdout, stderr=stderr, duration=0)


def run_once(runtime: Harness, pfs: Path, cmd: tuple[str, ...] | str, twin: Twin | None = None,
             req: RunRequest | None = None, **fields: Any) -> RunResult:
    return runtime.open(cmd, twin, **fields).run(req or request(pfs))


def test_user_code_sees_its_inputs_and_its_outputs_are_collected(runtime: Harness, pfs: Path) -> None:
    script = ('cat /pfs/in/a.txt > /pfs/out/copy.txt; mkdir -p /pfs/out/deep/er; '
              'cp "/pfs/in/sub dir/b.bin" /pfs/out/deep/er/; ls /pfs')

    def twin(call: FakeCall) -> RunResult:
        root = call.request.pfs_dir
        (root / "out" / "copy.txt").write_bytes((root / "in" / "a.txt").read_bytes())
        (root / "out" / "deep" / "er").mkdir(parents=True)
        (root / "out" / "deep" / "er" / "b.bin").write_bytes((root / "in" / "sub dir" / "b.bin").read_bytes())
        return done(stdout=b"in\nout\n")

    result = run_once(runtime, pfs, script, twin)
    assert result.exit_code == 0, result.stderr
    assert set(result.stdout.split()) >= {b"in", b"out"}
    assert written(result, pfs) == {"copy.txt": b"alpha\n", "deep/er/b.bin": B_BIN}
    assert not result.timed_out and not result.oom_killed and result.duration > 0


def test_stdin_lines_reach_user_code_joined_with_newlines(runtime: Harness, pfs: Path) -> None:
    result = run_once(runtime, pfs, ("cat",), lambda call: done(stdout=call.stdin), stdin=("a", "b c", ""))
    assert (result.exit_code, result.stdout) == (0, b"a\nb c\n\n")


def test_stdin_feeds_a_shell(runtime: Harness, pfs: Path) -> None:
    runtime.not_for_fake("it has no shell to read the script")
    result = run_once(runtime, pfs, ("sh",), stdin=("echo one", "cat /pfs/in/a.txt", "echo three"))
    assert (result.exit_code, result.stdout) == (0, b"one\nalpha\nthree\n")


def test_large_stdin_and_output_do_not_deadlock(runtime: Harness, pfs: Path) -> None:
    lines = tuple(f"line {i:07d} " + "x" * 50 for i in range(40_000))  # ~2.5 MB each way
    result = run_once(runtime, pfs, ("cat",), lambda call: done(stdout=call.stdin), stdin=lines)
    assert result.exit_code == 0 and not result.timed_out
    assert len(result.stdout) == LOG_TAIL_BYTES
    assert result.stdout.endswith(lines[-1].encode() + b"\n")


def test_env_is_the_transforms_and_the_requests_but_not_the_workers(
    runtime: Harness, pfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a secret in the worker's environment, the spec's env, and a request naming inputs
    # the way Pachyderm's tests do (names that are not shell identifiers)
    monkeypatch.setenv("HERD_WORKER_SECRET", "leak")
    req = request(pfs, **{"in": "/pfs/in/a.txt", "repo-1": "/pfs/in/a.txt", "repo-1_COMMIT": "c1"})

    def twin(call: FakeCall) -> RunResult:
        return done(stdout="".join(f"{k}={v}\n" for k, v in call.env.items()).encode())

    # When user code prints its environment (env, not a shell: dash drops such names)
    result = run_once(runtime, pfs, ("env",), twin, req, env={"FOO": "from-spec", "PACH_DATUM_ID": "overridden"})
    # Then it has both, the request winning, and nothing of the worker's
    assert result.exit_code == 0, result.stderr
    env = dict(line.split("=", 1) for line in result.stdout.decode().splitlines())
    assert env["FOO"] == "from-spec" and env["PACH_DATUM_ID"] == "d1" and env["PACH_JOB_ID"] == "job1"
    assert env["in"] == env["repo-1"] == runtime.seen(pfs, "in/a.txt")
    assert env["repo-1_COMMIT"] == "c1"
    assert "HERD_WORKER_SECRET" not in env


@pytest.mark.parametrize("name", ["A=B", ""])
def test_env_names_execve_cannot_take_are_refused(runtime: Harness, pfs: Path, name: str) -> None:
    runtime.not_for_fake("its function takes any dict; no execve to refuse a name")
    with pytest.raises(InvalidArgument, match="environment variable name"):
        run_once(runtime, pfs, ("true",), req=request(pfs, **{name: "x"}))


@pytest.mark.parametrize(
    ("script", "code", "stderr"),
    [("exit 0", 0, b""), ("echo oops >&2; exit 3", 3, b"oops\n"), ("kill -TERM $$", 143, b""), ("exit 255", 255, b"")],
)
def test_exit_code_and_stderr(runtime: Harness, pfs: Path, script: str, code: int, stderr: bytes) -> None:
    result = run_once(runtime, pfs, script, lambda call: done(code, stderr=stderr))
    assert (result.exit_code, result.stderr, result.timed_out) == (code, stderr, False)


def test_a_missing_program_fails_naming_it(runtime: Harness, pfs: Path) -> None:
    runtime.not_for_fake("it runs a function, not a program")
    result = run_once(runtime, pfs, ("/no/such/program", "x"))
    assert result.exit_code != 0 and b"/no/such/program" in result.stderr


def test_stdout_and_stderr_tails_are_bounded(runtime: Harness, pfs: Path) -> None:
    script = "head -c 300000 /dev/zero | tr '\\0' a; echo END; echo ERR >&2"
    result = run_once(runtime, pfs, script, lambda call: done(stdout=b"a" * 300_000 + b"END\n", stderr=b"ERR\n"))
    assert len(result.stdout) == LOG_TAIL_BYTES and result.stdout.endswith(b"aEND\n")
    assert result.stderr == b"ERR\n"


def test_working_dir(runtime: Harness, pfs: Path) -> None:
    def twin(call: FakeCall) -> RunResult:
        folder = call.request.pfs_dir / (call.transform.working_dir or "/").removeprefix("/pfs/")
        return done(stdout=f"{call.transform.working_dir}\n".encode() + (folder / "a.txt").read_bytes())

    result = run_once(runtime, pfs, "pwd; cat a.txt", twin, working_dir="/pfs/in")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.decode().splitlines() == [runtime.seen(pfs, "in"), "alpha"]


def test_a_timeout_kills_user_code_and_the_session_goes_on(runtime: Harness, pfs: Path) -> None:
    runtime.not_for_fake("its function runs on the caller's thread: there is nothing to kill")
    # Given a session whose user code hangs on one datum (a child sleeping too)
    script = '[ "$PACH_DATUM_ID" != slow ] || { echo started; sleep 60 & sleep 60; echo never; }; echo done'
    session = runtime.open(script)
    # When that datum passes its timeout
    result = session.run(request(pfs, timeout=1.0, PACH_DATUM_ID="slow"))
    # Then it was killed, what it printed before is kept, and the next datum runs
    assert result.timed_out and result.exit_code == 137
    assert result.stdout == b"started\n"
    later = session.run(request(pfs, timeout=30))
    assert (later.exit_code, later.stdout, later.timed_out) == (0, b"done\n", False)


def test_one_session_runs_datums_in_any_folder(runtime: Harness, tmp_path: Path) -> None:
    # Given one session, When datums run in a folder made again and then in another folder
    def twin(call: FakeCall) -> RunResult:
        root = call.request.pfs_dir
        return done(stdout=(root / "in" / "x").read_bytes() + b"".join(p.name.encode() for p in (root / "out").iterdir()))

    session = runtime.open("cat /pfs/in/x; ls /pfs/out", twin)
    first, second = tmp_path / "a", tmp_path / "b"
    outputs = []
    for folder, text in ((first, "1"), (first, "2"), (second, "3"), (first, "4")):
        clear_pfs(folder)
        (folder / "in").mkdir(parents=True)
        (folder / "out").mkdir(exist_ok=True)
        (folder / "in" / "x").write_text(text)
        outputs.append(session.run(request(folder)).stdout)
    # Then each run saw its own inputs, and an empty /pfs/out
    assert outputs == [b"1", b"2", b"3", b"4"]
    session.close()
    session.close()  # twice is fine
