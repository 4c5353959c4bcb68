"""How user code runs: a Runtime opens a Session per pipeline; a Session runs one datum at a time.

A Session is warm: it is opened once per pipeline per worker (a container, a sandbox) and runs
many datums, as Pachyderm keeps its worker pods up. Implementations, one file each:
`process_runtime.ProcessRuntime` (embedded default) and `docker_runtime.DockerRuntime`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from worker.secrets import SecretMount


@dataclass(frozen=True)
class UserCode:
    """What to run, from the spec's `transform` (plus limits), independent of the runtime."""

    image: str
    cmd: tuple[str, ...]
    stdin: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None
    accept_return_code: tuple[int, ...] = ()
    cpu: float | None = None  # cores
    memory: int | None = None  # bytes
    network: bool = True
    secret_mounts: tuple[SecretMount, ...] = ()  # transform.secrets with a mount_path (values hidden in repr)


class LogSink(Protocol):
    """Where a runtime hands user code's output as it reads it, in arbitrary chunks per stream
    ("stdout" or "stderr"). It must return at once: it is called on the runtime's read loop."""

    def write(self, stream: str, chunk: bytes) -> None: ...


@dataclass(frozen=True)
class RunRequest:
    """One datum. `pfs_dir` is a host folder laid out as the user must see `/pfs`:
    `<pfs_dir>/<input name>/<original path>` (read-only for user code) and an empty
    `<pfs_dir>/out/` (the only writable place). After `run` returns, `<pfs_dir>/out` holds
    what user code wrote there, unless the result carries it (`RunResult.outputs`)."""

    pfs_dir: Path
    env: dict[str, str]  # PACH_JOB_ID, PACH_DATUM_ID, <input>=/pfs/<input>/<path>, ...
    timeout: float | None = None  # seconds; the process is killed past it
    sink: LogSink | None = None  # given what user code prints while it runs (live logs)
    # The inputs read into memory instead of laid out under pfs_dir, for a session that takes
    # them so (`inputs_in_memory`, bytes): ('<input>/<path>', bytes), a folder's bytes None,
    # parents first and sorted, as a walk of the laid-out folder gives them.
    inputs: tuple[tuple[str, bytes | None], ...] | None = None


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    stdout: bytes  # the tail user code printed (bounded)
    stderr: bytes
    duration: float
    timed_out: bool = False
    oom_killed: bool = False  # the kernel killed user code for exceeding resource_limits.memory
    # What user code wrote to /pfs/out ('a/b' -> bytes), when the runtime read it into memory
    # (names checked as an archive's members) instead of laying it out under <pfs_dir>/out.
    outputs: dict[str, bytes] | None = None


class Session(Protocol):
    """Optionally `inputs_in_memory: int`: a datum's inputs up to that many bytes are given in
    the request (RunRequest.inputs), not laid out under its folder (absent: never)."""

    def run(self, request: RunRequest) -> RunResult: ...

    def close(self) -> None: ...


class Runtime(Protocol):
    name: str

    def open(self, pipeline: str, transform: UserCode) -> Session: ...


LOG_TAIL_BYTES = 64 * 1024

