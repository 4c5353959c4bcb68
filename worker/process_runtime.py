"""ProcessRuntime, the embedded default: user code runs as a host process per datum.

User code must see the real `/pfs` paths. Chosen once per worker process, by a probe:
1. `bwrap`: a warm sandbox per session, a mount namespace whose root is a tmpfs re-binding
   every top-level host entry except `/pfs`, `/proc`, `/dev`, then the datum folder read-only
   at `/pfs` and its `out/` writable at `/pfs/out`;
2. `unshare`: as root, the same with `unshare -m` and a private bind of a host `/pfs` folder;
3. `rewrite`: no namespace; `/pfs` in cmd, stdin and env is rewritten to the real folder, and
   inputs are NOT read-only (callers must stage copies, not hard links).
As root, in 1 and 2 the namespace is held by a tiny `sh` for the whole session and each datum
enters it with `nsenter` (~2 ms) instead of building it again (~10 ms with bwrap): the bind
mounts keep pointing at the datum folder because staging.clear_pfs keeps its two folders'
inodes. Without root, bwrap runs once per datum (see _Sandbox).
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from storage.errors import HerdError, InvalidArgument, UserCodeError
from worker.process_io import communicate, exit_code
from worker.runtime import RunRequest, RunResult, Transform
from worker.staging import detach_hard_links

log = logging.getLogger(__name__)

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_ENV = {"PATH": SAFE_PATH, "HOME": "/tmp", "LANG": "C.UTF-8"}
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# '/pfs' as a path of its own: not inside '/x/pfs', not the start of '/pfsx'.
_PFS_RE = re.compile(r"(?<![\w.\-/])/pfs(?![\w.\-])")
_HOLDER_SCRIPT = 'echo $$; read _'  # prints its pid, then holds the namespace until stdin closes
_UNSHARE_SCRIPT = (
    'mount --bind "$1" /pfs && mount -o remount,bind,ro /pfs && mount --bind "$1/out" /pfs/out && '
    + _HOLDER_SCRIPT
)


class Isolation(str, Enum):
    BWRAP = "bwrap"
    UNSHARE = "unshare"
    REWRITE = "rewrite"


_detected: Isolation | None = None
_detect_lock = threading.Lock()
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def detect_isolation() -> Isolation:
    """The best isolation this machine offers, probed once per process."""
    global _detected
    with _detect_lock:
        if _detected is None:
            _detected = next((mode for mode in (Isolation.BWRAP, Isolation.UNSHARE) if _probe(mode)), Isolation.REWRITE)
            log.info("user code isolation: %s", _detected.value)
        return _detected


def _probe(mode: Isolation) -> bool:
    """Whether a sandbox of this kind starts here and shows /pfs read-only with a writable out."""
    if not _tools_present(mode):
        return False
    with tempfile.TemporaryDirectory(prefix="herd-probe-") as folder:
        pfs = Path(folder)
        (pfs / "in").mkdir()
        (pfs / "out").mkdir()
        check = "test -d /pfs/in && ! touch /pfs/in/x 2>/dev/null && touch /pfs/out/x"
        try:
            sandbox = _Sandbox(mode, pfs)
        except HerdError:
            return False
        try:
            argv = sandbox.enter_argv("/", None) + ["/bin/sh", "-c", check]
            done = subprocess.run(argv, env=BASE_ENV, capture_output=True, timeout=10)
            return done.returncode == 0 and (pfs / "out" / "x").exists()
        except (OSError, subprocess.SubprocessError):
            return False
        finally:
            sandbox.close()


def _tools_present(mode: Isolation) -> bool:
    tools = ["nsenter", "sh"] + (["bwrap"] if mode is Isolation.BWRAP else ["unshare", "mount"])
    if mode is Isolation.UNSHARE and os.geteuid() != 0:
        return False
    return all(shutil.which(tool, path=SAFE_PATH) for tool in tools)


def _bwrap_root_args() -> list[str]:
    """A tmpfs root re-binding every top-level host entry but /pfs, /proc and /dev."""
    args = ["--tmpfs", "/"]
    for name in sorted(os.listdir("/")):
        path = f"/{name}"
        if name in ("pfs", "proc", "dev"):
            continue
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        else:
            args += ["--bind", path, path]
    return args + ["--proc", "/proc", "--dev", "/dev"]


def _identity(pfs_dir: Path) -> tuple[int, ...]:
    """(dev, inode) of the datum folder and its out/: what the namespace's binds point at."""
    a, b = os.stat(pfs_dir), os.stat(pfs_dir / "out")
    return (a.st_dev, a.st_ino, b.st_dev, b.st_ino)


class _Sandbox:
    """A mount namespace in which `pfs_dir` is /pfs: warm (held by a `sh`, entered with
    nsenter) as root; cold (one bwrap per datum) otherwise, because unprivileged bwrap nests
    its mounts in a user namespace that nsenter 2.38 cannot join."""

    def __init__(self, mode: Isolation, pfs_dir: Path) -> None:
        self.identity = _identity(pfs_dir)
        self.proc: subprocess.Popen[bytes] | None = None
        binds = ["--ro-bind", str(pfs_dir), "/pfs", "--bind", str(pfs_dir / "out"), "/pfs/out"]
        self.cold_prefix = ["bwrap", *_bwrap_root_args(), *binds]
        if mode is Isolation.BWRAP and os.geteuid() != 0:
            return
        if mode is Isolation.BWRAP:
            argv = [*self.cold_prefix, "--", "/bin/sh", "-c", _HOLDER_SCRIPT]
        else:
            Path("/pfs").mkdir(mode=0o755, exist_ok=True)  # the host mount point (root only)
            argv = ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", _UNSHARE_SCRIPT, "sh", str(pfs_dir)]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=BASE_ENV, start_new_session=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else b""
        if not line.strip().isdigit():
            error = self._stop()
            raise HerdError(f"cannot start the {mode.value} sandbox for /pfs: {error or 'no output'}")
        self.namespace = f"/proc/{int(line)}/ns/mnt"

    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None

    def enter_argv(self, working_dir: str, ids: tuple[int, int] | None) -> list[str]:
        """The prefix that runs a command inside this namespace."""
        if self.proc is None:
            return [*self.cold_prefix, "--chdir", working_dir, "--"]
        argv = ["nsenter", f"--mount={self.namespace}", f"--wdns={working_dir}"]
        if ids is not None:
            argv += [f"--setuid={ids[0]}", f"--setgid={ids[1]}"]
        return argv + ["--"]

    def _stop(self) -> str:
        """End the holder (EOF on its stdin, then a kill); returns what it printed on stderr."""
        assert self.proc is not None
        try:
            _, err = self.proc.communicate(input=b"\n", timeout=2)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            _, err = self.proc.communicate()
        return (err or b"").decode(errors="replace").strip()[-500:]

    def close(self) -> None:
        if self.proc is not None and self.alive():
            self._stop()


class ProcessSession:
    """Runs one pipeline's transform per datum, sandboxed as detected."""

    def __init__(self, pipeline: str, transform: Transform, isolation: Isolation, base_env: dict[str, str]) -> None:
        self.pipeline = pipeline
        self.transform = transform
        self.isolation = isolation
        self.inputs_read_only = isolation is not Isolation.REWRITE
        self._base_env = base_env
        self._ids = _resolve_user(transform.user)
        self._sandbox: _Sandbox | None = None

    def run(self, request: RunRequest) -> RunResult:
        """Run the transform once over `request.pfs_dir`; never raises for user-code failures."""
        pfs_dir = Path(request.pfs_dir).absolute()
        (pfs_dir / "out").mkdir(parents=True, exist_ok=True)
        if self._ids is not None:
            os.chown(pfs_dir / "out", *self._ids)  # the only place the user must write
        if not self.inputs_read_only:
            detach_hard_links(pfs_dir)  # a write to a linked input would reach the blob store
        argv, cwd, env, stdin = self._prepare(pfs_dir, request)
        started = time.monotonic()
        deadline = None if request.timeout is None else started + request.timeout
        try:
            proc = self._spawn(argv, cwd, env, stdin)
        except OSError as exc:
            # What a shell (and nsenter, in the namespace modes) reports: 127 = not found, 126 = cannot run.
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            message = f"herd: cannot run '{argv[0]}' (in '{cwd}'): {exc.strerror}: {exc.filename}\n".encode()
            return RunResult(exit_code=code, stdout=b"", stderr=message, duration=time.monotonic() - started)
        out, err, timed_out = communicate(proc, stdin, deadline)
        return RunResult(
            exit_code=exit_code(proc.returncode), stdout=out, stderr=err,
            duration=time.monotonic() - started, timed_out=timed_out,
        )

    def _prepare(self, pfs_dir: Path, request: RunRequest) -> tuple[list[str], str, dict[str, str], bytes]:
        """argv, cwd, env and stdin bytes of one datum, for the session's isolation."""
        t = self.transform
        if not t.cmd:
            raise UserCodeError(f"pipeline '{self.pipeline}' has an empty transform.cmd")
        env = _merge_env(self._base_env, t.env, request.env)
        stdin = ("\n".join(t.stdin) + "\n").encode() if t.stdin else b""
        working_dir = t.working_dir or "/"
        if self.isolation is Isolation.REWRITE:
            rewrite = _rewriter(pfs_dir)
            env = {key: rewrite(value) for key, value in env.items()}
            argv = [rewrite(arg) for arg in t.cmd]
            return argv, rewrite(working_dir), env, rewrite(stdin.decode()).encode()
        sandbox = self._sandbox_for(pfs_dir)
        return sandbox.enter_argv(working_dir, self._ids) + list(t.cmd), "/", env, stdin

    def _sandbox_for(self, pfs_dir: Path) -> _Sandbox:
        """The warm sandbox, started again if it died or the datum folder is another one."""
        sandbox = self._sandbox
        if sandbox is None or not sandbox.alive() or sandbox.identity != _identity(pfs_dir):
            if sandbox is not None:
                sandbox.close()
            sandbox = self._sandbox = _Sandbox(self.isolation, pfs_dir)
        return sandbox

    def _spawn(self, argv: list[str], cwd: str, env: dict[str, str], stdin: bytes) -> subprocess.Popen[bytes]:
        """Start user code in a new session, so a timeout can kill its whole process group."""
        creds: dict[str, object] = {}
        if self._ids is not None and self.isolation is Isolation.REWRITE:
            creds = {"user": self._ids[0], "group": self._ids[1], "extra_groups": []}
        return subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=cwd, env=env, start_new_session=True, **creds,  # type: ignore[arg-type]
        )

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None


class ProcessRuntime:
    """Runtime running user code as local processes (embedded default)."""

    name = "local"

    def __init__(self, isolation: Isolation | str | None = None, base_env: dict[str, str] | None = None) -> None:
        self._forced = None if isolation is None else Isolation(isolation)
        self._base_env = dict(BASE_ENV if base_env is None else base_env)

    @property
    def isolation(self) -> Isolation:
        """The isolation sessions use: forced in the constructor, else probed once."""
        return self._forced or detect_isolation()

    def open(self, pipeline: str, transform: Transform) -> ProcessSession:
        """A session for one pipeline's transform; warns once when /pfs must be rewritten."""
        isolation = self.isolation
        if isolation is Isolation.REWRITE:
            _warn_once("rewrite", (
                "no mount namespace here (bwrap or root with unshare): /pfs is rewritten to the "
                "real datum folder in cmd, stdin and env only, and inputs are not read-only"
            ))
        return ProcessSession(pipeline, transform, isolation, self._base_env)


def _merge_env(*layers: dict[str, str]) -> dict[str, str]:
    """Later layers win; keys and values are checked as a shell would need them."""
    env: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.items():
            if not _ENV_KEY.match(key):
                raise InvalidArgument(f"invalid environment variable name '{key}'")
            if "\x00" in value:
                raise InvalidArgument(f"environment variable '{key}' contains a NUL byte")
            env[key] = value
    return env


def _rewriter(pfs_dir: Path) -> Callable[[str], str]:
    """Replace '/pfs' paths with the real datum folder (the no-namespace fallback)."""
    real = str(pfs_dir)
    return lambda text: _PFS_RE.sub(lambda _m: real, text)


def _resolve_user(user: str | None) -> tuple[int, int] | None:
    """(uid, gid) to switch to, or None to run as the worker; warns when it cannot switch."""
    if not user:
        return None
    name, _, group = user.partition(":")
    uid, gid = _lookup_user(name)
    if group:
        gid = _lookup_group(group)
    if os.geteuid() != 0:
        if uid != os.geteuid():
            _warn_once(f"user:{user}", f"transform.user '{user}' ignored: the worker is not root")
        return None
    return (uid, gid)


def _lookup_user(name: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        if name.isdigit():
            return int(name), int(name)  # a bare uid need not have a passwd entry
        raise UserCodeError(f"transform.user '{name}' does not exist on this worker") from None


def _lookup_group(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise UserCodeError(f"transform.user group '{group}' does not exist on this worker") from None
