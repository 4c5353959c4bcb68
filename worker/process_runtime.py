"""ProcessRuntime, the embedded default: user code runs as a host process per datum.

User code must see the real `/pfs` paths and must not reach stored data. Chosen once per
worker process, by a probe (or forced: HERD_LOCAL_ISOLATION):
1. `bwrap`: a bubblewrap sandbox: a read-only tmpfs root re-binding every top-level host entry
   read-only, a private /tmp (= $HOME), /dev and /proc; the storage and scratch folders and
   /run are empty tmpfs; its own PID, IPC and UTS namespaces (network too when it is off); it
   dies with its parent. Each datum's inputs are read-only at /pfs, its out/ writable at
   /pfs/out, and user code runs with no capability at all.
2. `unshare`: as root without bwrap, the same built by `sandbox_init.py` with unshare(2).
3. `rewrite`: no namespace; `/pfs` in cmd, stdin and env is rewritten to the real folder, user
   code can write wherever the worker's user can, and only the process tree is contained
   (`sandbox_init.py` as a child subreaper).
Warm: as root (and in rewrite mode) one sandbox serves a session, its runner (sandbox_init.py)
starting each datum's user code with a vfork and exec; the worker hands it the datum's folder
as detached mounts (open_tree), which it moves onto /pfs and /pfs/out for that datum only, with
a fresh /tmp and /dev/shm. Without root the worker cannot make detached mounts, so bwrap runs
once per datum (cold).
In every mode, when the datum's first process exits, every process it started is killed before
`run` returns (the runner kills every other process of its PID namespace, or, in rewrite mode,
what it inherits as subreaper; a per-datum bwrap dies with its PID namespace), so nothing
writes to /pfs/out while outputs are collected, and no process of one datum ever sees the
next one's folder. Inputs are private copies (see staging): no mode hands user code a file
that shares an inode with a stored blob.
"""

from __future__ import annotations

import ctypes
import grp
import json
import logging
import os
import pwd
import queue
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from enum import Enum
from pathlib import Path

from storage.errors import InvalidArgument, UserCodeError
from worker.process_io import RunCancelled, communicate, exit_code, kill_group, pump
from worker.runtime import LogSink, RunRequest, RunResult, UserCode
from worker.staging import detach_hard_links

log = logging.getLogger(__name__)

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_ENV = {"PATH": SAFE_PATH, "HOME": "/tmp", "LANG": "C.UTF-8"}
# '/pfs' as a path of its own: not inside '/x/pfs', not the start of '/pfsx'.
_PFS_RE = re.compile(r"(?<![\w.\-/])/pfs(?![\w.\-])")
SANDBOX_INIT = Path(__file__).with_name("sandbox_init.py")
# Never shown to user code: /run holds the sockets of root daemons (docker, dbus), which a
# read-only mount does not protect (connect() needs no write access to the file system).
ALWAYS_HIDDEN = ("/run", "/var/run")
RESOLV_CONF = "/etc/resolv.conf"
# Top-level entries a sandbox provides itself rather than binding the host's.
_OWN_ENTRIES = ("pfs", "proc", "dev", "tmp")
RUNNER_START_TIMEOUT = 30.0
RUNNER_STOP_GRACE = 2.0
# Mount API syscalls (the same number on every architecture since Linux 5.2 / 5.12).
SYS_OPEN_TREE, SYS_MOUNT_SETATTR = 428, 442
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC = 1, os.O_CLOEXEC
AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH, AT_RECURSIVE = 0x100, 0x1000, 0x8000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 1, 2, 4
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


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
        session = ProcessSession("probe", UserCode(image="", cmd=("/bin/sh", "-c", check)), mode, BASE_ENV, ())
        try:
            result = session.run(RunRequest(pfs_dir=pfs, env={}, timeout=10))
        except (OSError, RunCancelled):
            return False
        finally:
            session.close()
        if result.exit_code != 0:
            log.debug("%s sandbox unavailable: %s", mode.value, result.stderr.decode(errors="replace").strip())
        return result.exit_code == 0 and (pfs / "out" / "x").exists()


def _tools_present(mode: Isolation) -> bool:
    if mode is Isolation.BWRAP:
        return shutil.which("bwrap", path=SAFE_PATH) is not None
    return mode is Isolation.UNSHARE and os.geteuid() == 0 and sys.platform.startswith("linux")


def masks(protect: Iterable[Path | str]) -> tuple[list[str], list[str]]:
    """(folders shown empty, files shown again inside them) for a sandbox.

    Hidden: the folders the caller protects (storage, scratch) and /run; not '/' and nothing
    under /tmp, which is private in the sandbox anyway. Shown again: resolv.conf when it lives
    in a hidden folder (systemd-resolved), so DNS still works.
    """
    hide: list[str] = []
    for path in [*protect, *ALWAYS_HIDDEN]:
        real = os.path.realpath(path)
        if real in hide or real in ("/", "/tmp") or real.startswith("/tmp/") or not os.path.isdir(real):
            continue
        hide.append(real)
    resolv = os.path.realpath(RESOLV_CONF)
    inside = any(resolv.startswith(folder + "/") for folder in hide)
    return hide, ([resolv] if inside and os.path.isfile(resolv) else [])


def _bwrap_root(hide: list[str], reveal: list[str]) -> list[str]:
    """bubblewrap arguments of the root user code sees, without /pfs: a tmpfs re-binding every
    top-level host entry read-only, a private /tmp, /dev and /proc, hidden folders empty."""
    args = ["--tmpfs", "/"]
    for name in sorted(os.listdir("/")):
        path = f"/{name}"
        if name in _OWN_ENTRIES:
            continue
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path) or os.path.isfile(path):
            args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for folder in hide:
        args += ["--tmpfs", folder]
    for file in reveal:
        args += ["--ro-bind", file, file]
    for folder in hide:
        args += ["--remount-ro", folder]
    return args


def bwrap_argv(pfs_dir: Path, hide: list[str], reveal: list[str], working_dir: str, network: bool) -> list[str]:
    """The bubblewrap command line of one datum (the cold path, without root), up to '--'."""
    args = ["bwrap", *_bwrap_root(hide, reveal)]
    args += ["--ro-bind", str(pfs_dir), "/pfs", "--bind", str(pfs_dir / "out"), "/pfs/out"]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts"] + ([] if network else ["--unshare-net"])
    return args + ["--die-with-parent", "--new-session", "--chdir", working_dir]


def runner_argv(mode: Isolation, hide: list[str], reveal: list[str], network: bool) -> list[str]:
    """The command line of a session's runner (sandbox_init.py), up to its CONFIG and FD.

    bwrap: inside a session sandbox that keeps root's capabilities (the runner needs them to
    mount each datum's folders and kill its leftovers; user code gets none), with an empty
    /pfs and a read-only root. The interpreter is named by its real path: the sandbox's /tmp is
    private, so a virtualenv there would not be found, and the source is passed with -c."""
    python = os.path.realpath(sys.executable) if mode is Isolation.BWRAP else sys.executable
    runner = [python, "-I", "-S", "-c", _runner_source()]
    if mode is not Isolation.BWRAP:
        return runner
    args = ["bwrap", *_bwrap_root(hide, reveal), "--dir", "/pfs", "--remount-ro", "/"]
    args += ["--unshare-pid", "--as-pid-1", "--unshare-ipc", "--unshare-uts"] + ([] if network else ["--unshare-net"])
    return args + ["--die-with-parent", "--chdir", "/", "--", *runner]


_source: str | None = None


def _runner_source() -> str:
    global _source
    if _source is None:
        _source = SANDBOX_INIT.read_text()
    return _source


class _Starter:
    """Starts runner processes from one thread that lives as long as the worker process.

    A runner dies with the THREAD that started it (PR_SET_PDEATHSIG, bwrap's --die-with-parent),
    and a session may outlive the thread that ran its first datum."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[Future[subprocess.Popen[bytes]], Callable[[], subprocess.Popen[bytes]]]]
        self._jobs = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self, popen: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="herd-sandbox-starter", daemon=True)
                self._thread.start()
        done: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((done, popen))
        return done.result()

    def _serve(self) -> None:
        while True:
            done, popen = self._jobs.get()
            try:
                done.set_result(popen())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.set_exception(exc)


_starter = _Starter()


class _Runner:
    """A session's runner process (sandbox_init.py) and the socket it takes datums on."""

    def __init__(self, argv: list[str], config: Mapping[str, object]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = _starter.start(lambda: subprocess.Popen(
                [*argv, json.dumps(config), str(theirs.fileno())], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(theirs.fileno(),),
                cwd="/", env=BASE_ENV, start_new_session=True,
            ))
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self.namespaced = config["mode"] != Isolation.REWRITE.value
        ready, _, _ = select.select([ours], [], [], RUNNER_START_TIMEOUT)
        if not ready or ours.recv(6) != b"ready\n":
            self.stop()
            assert self.proc.stderr is not None
            error = self.proc.stderr.read().decode(errors="replace").strip()[-500:]
            self.release()
            raise OSError(f"the {config['mode']} sandbox did not start: {error or 'no output'}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, request: Mapping[str, object], fds: list[int]) -> None:
        """One datum (or a kill): its frame, with `fds` attached to the first bytes."""
        body = json.dumps(request).encode()
        frame = len(body).to_bytes(4, "big") + body
        sent = socket.send_fds(self.sock, [frame], fds) if fds else self.sock.send(frame)
        if sent < len(frame):  # one sendmsg normally: the runner wakes once
            self.sock.sendall(frame[sent:])

    def stop(self) -> None:
        """Kill the runner and every datum process (namespaces: the runner's process group,
        whose PID namespace dies with it; rewrite: the runner kills user code on SIGTERM)."""
        if self.namespaced:
            kill_group(self.proc.pid)
        else:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=RUNNER_STOP_GRACE)
            except subprocess.TimeoutExpired:
                kill_group(self.proc.pid)
        self.proc.wait()

    def release(self) -> None:
        """Close the worker's ends (only once no thread uses them)."""
        self.sock.close()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


class ProcessSession:
    """Runs one pipeline's transform per datum, sandboxed as detected.

    Warm (root, or rewrite mode): one runner process per session starts each datum (see
    sandbox_init.py). Cold (bwrap without root or without the mount API, so no way to hand a
    datum's folder to a running sandbox): one bwrap per datum.
    `close` from another thread stops a datum that is running: its processes are killed and
    `run` raises RunCancelled (no result: the datum was not judged, it runs again later)."""

    def __init__(
        self, pipeline: str, transform: UserCode, isolation: Isolation, base_env: dict[str, str],
        protect: Iterable[Path | str] = (),
    ) -> None:
        self.pipeline = pipeline
        self.transform = transform
        self.isolation = isolation
        self.inputs_read_only = isolation is not Isolation.REWRITE
        self._base_env = base_env
        self._protect = tuple(protect)
        self._ids = _resolve_user(transform.user)
        self._warm = isolation is not Isolation.BWRAP or (os.geteuid() == 0 and _mount_api())
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._runner: _Runner | None = None
        self._busy = False
        self._closed = False

    def run(self, request: RunRequest) -> RunResult:
        """Run the transform once over `request.pfs_dir`; never raises for user-code failures."""
        pfs_dir = Path(request.pfs_dir).absolute()
        (pfs_dir / "out").mkdir(parents=True, exist_ok=True)
        if self._ids is not None:
            os.chown(pfs_dir / "out", *self._ids)  # the only place the user must write
        if not self.inputs_read_only:
            detach_hard_links(pfs_dir)  # staging copies; this guards callers that link
        argv, env, stdin, cwd = self._prepare(pfs_dir, request)
        started = time.monotonic()
        deadline = None if request.timeout is None else started + request.timeout
        if self._warm:
            return self._run_warm(pfs_dir, argv, env, stdin, cwd, started, deadline, request.sink)
        return self._run_cold(pfs_dir, argv, env, stdin, cwd, started, deadline, request.sink)

    def _prepare(self, pfs_dir: Path, request: RunRequest) -> tuple[list[str], dict[str, str], bytes, str]:
        """User code's argv, env, stdin bytes and working dir for one datum."""
        t = self.transform
        if not t.cmd:
            raise UserCodeError(f"pipeline '{self.pipeline}' has an empty transform.cmd")
        for mount in t.secret_mounts:
            raise UserCodeError(
                f"secret '{mount.name}' of pipeline '{self.pipeline}': the local runtime cannot mount secrets "
                f"(mount_path '{mount.path}'); use env_var, or the docker runtime"
            )
        env = _merge_env(self._base_env, t.env, request.env)
        stdin = ("\n".join(t.stdin) + "\n").encode() if t.stdin else b""
        working_dir = t.working_dir or "/"
        if self.isolation is Isolation.REWRITE:
            rewrite = _rewriter(pfs_dir)
            env = {key: rewrite(value) for key, value in env.items()}
            cmd, working_dir = [rewrite(arg) for arg in t.cmd], rewrite(working_dir)
            return cmd, env, rewrite(stdin.decode()).encode(), working_dir
        return list(t.cmd), env, stdin, working_dir

    def _run_warm(self, pfs_dir: Path, argv: list[str], env: dict[str, str], stdin: bytes, cwd: str,
                  started: float, deadline: float | None, sink: LogSink | None = None) -> RunResult:
        """One datum through the session's runner."""
        request = {"argv": argv, "env": env, "cwd": cwd, "ids": self._ids}
        try:
            runner = self._runner_for()
        except OSError as exc:  # no sandbox could start here
            return RunResult(exit_code=126, stdout=b"", stderr=f"herd: {exc}\n".encode(),
                             duration=time.monotonic() - started)
        try:
            try:
                theirs = [detached_mount(pfs_dir, read_only=True), detached_mount(pfs_dir / "out", read_only=False)] \
                    if self.isolation is not Isolation.REWRITE else []
            except OSError as exc:
                return RunResult(exit_code=126, stdout=b"", stderr=f"herd: {exc}\n".encode(),
                                 duration=time.monotonic() - started)
            in_read, in_write = os.pipe() if stdin else (os.open(os.devnull, os.O_RDONLY), -1)
            out_read, out_write = os.pipe()
            err_read, err_write = os.pipe()
            theirs = [in_read, out_write, err_write, *theirs]
            try:
                runner = self._send(runner, request, theirs)
            except OSError as exc:
                for fd in (out_read, err_read, in_write):
                    if fd >= 0:
                        os.close(fd)
                return RunResult(exit_code=126, stdout=b"", stderr=f"herd: {exc}\n".encode(),
                                 duration=time.monotonic() - started)
            finally:
                for fd in theirs:
                    os.close(fd)
            sent_to = runner
            out, err, line, timed_out = pump(
                out_read, err_read, None if in_write < 0 else in_write, stdin, runner.sock, deadline,
                lambda: sent_to.send({"kill": 1}, []), sink,
            )
        finally:
            self._idle(runner)
        if line is None:
            if self._closed:
                raise RunCancelled(f"pipeline '{self.pipeline}': the worker stopped while a datum ran")
            self._forget(runner)
            err += b"herd: the sandbox of this session ended while the datum ran\n"
            return RunResult(exit_code=137, stdout=out, stderr=err, duration=time.monotonic() - started,
                             timed_out=timed_out)
        return RunResult(exit_code=int(line), stdout=out, stderr=err, duration=time.monotonic() - started,
                         timed_out=timed_out)

    def _send(self, runner: _Runner, request: Mapping[str, object], fds: list[int]) -> _Runner:
        """Hand a datum to the runner; to a new one when it died since the last datum (its
        parent thread ended, or user code killed it)."""
        try:
            runner.send(request, fds)
            return runner
        except OSError:
            self._forget(runner)
        runner = self._runner_for()
        runner.send(request, fds)
        return runner

    def _forget(self, runner: _Runner) -> None:
        """Stop a runner that failed; the next datum starts another."""
        with self._lock:
            if self._runner is runner:
                self._runner = None
        runner.stop()
        runner.release()  # this thread is the only one that uses its socket

    def _runner_for(self) -> _Runner:
        """The session's runner, started when missing or dead; marks the session busy."""
        with self._lock:
            if self._closed:
                raise RunCancelled(f"pipeline '{self.pipeline}': the session is closed")
            runner = self._runner
            if runner is not None and not runner.alive():
                runner.stop()
                runner.release()
                runner = self._runner = None
            if runner is None:
                hide, reveal = masks(self._protect) if self.isolation is not Isolation.REWRITE else ([], [])
                config = {
                    "mode": self.isolation.value, "parent": 0 if self.isolation is Isolation.BWRAP else os.getpid(),
                    "network": self.transform.network, "hide": hide, "reveal": reveal,
                    # bwrap itself reported 1 for a program it could not run; the other modes, a shell's 127/126
                    "exec_failed": 1 if self.isolation is Isolation.BWRAP else None,
                }
                runner = self._runner = _Runner(runner_argv(self.isolation, hide, reveal, self.transform.network), config)
            self._busy = True
            return runner

    def _idle(self, runner: _Runner) -> None:
        """The datum is over: a runner the session no longer holds lets go of its socket now."""
        with self._lock:
            self._busy = False
            gone = self._closed or self._runner is not runner
        if gone:
            runner.release()

    def _run_cold(self, pfs_dir: Path, argv: list[str], env: dict[str, str], stdin: bytes, cwd: str,
                  started: float, deadline: float | None, sink: LogSink | None = None) -> RunResult:
        """One datum in a bwrap of its own."""
        hide, reveal = masks(self._protect)
        argv = bwrap_argv(pfs_dir, hide, reveal, cwd, self.transform.network) + ["--cap-drop", "ALL", "--", *argv]
        try:
            proc = self._spawn(argv, env, stdin)
        except OSError as exc:
            # What a shell reports: 127 = not found, 126 = cannot run.
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            message = f"herd: cannot run '{argv[0]}' (in '{cwd}'): {exc.strerror}: {exc.filename}\n".encode()
            return RunResult(exit_code=code, stdout=b"", stderr=message, duration=time.monotonic() - started)
        try:
            out, err, timed_out = communicate(proc, stdin, deadline, sink=sink)
        finally:
            with self._lock:
                self._running.discard(proc)
        if self._closed:
            raise RunCancelled(f"pipeline '{self.pipeline}': the worker stopped while a datum ran")
        return RunResult(
            exit_code=exit_code(proc.returncode), stdout=out, stderr=err,
            duration=time.monotonic() - started, timed_out=timed_out,
        )

    def _spawn(self, argv: list[str], env: dict[str, str], stdin: bytes) -> subprocess.Popen[bytes]:
        """Start the sandbox in a new session, so a timeout can kill its whole process group."""
        with self._lock:
            if self._closed:
                raise RunCancelled(f"pipeline '{self.pipeline}': the session is closed")
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, cwd="/", env=env, start_new_session=True,
            )
            self._running.add(proc)
        return proc

    def close(self) -> None:
        """End the session; a datum running now is killed (its sandbox dies with it)."""
        with self._lock:
            self._closed = True
            running = list(self._running)
            runner, self._runner = self._runner, None
            busy = self._busy
        for proc in running:
            kill_group(proc.pid)
        if runner is not None:
            runner.stop()
            if not busy:
                runner.release()


def detached_mount(path: Path, read_only: bool) -> int:
    """An fd of a detached copy of the mount of `path` (open_tree), limited to `path`, for a
    runner to move into a datum's namespace: nosuid, nodev, and read-only when asked."""
    fd: int = _libc.syscall(SYS_OPEN_TREE, -100, os.fsencode(path), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"open_tree: {os.strerror(err)}", str(path))
    attr = _MountAttr(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (MOUNT_ATTR_RDONLY if read_only else 0), 0, 0, 0)
    if _libc.syscall(SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH | AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)):
        err = ctypes.get_errno()
        os.close(fd)
        raise OSError(err, f"mount_setattr: {os.strerror(err)}", str(path))
    return fd


_mount_api_works: bool | None = None


def _mount_api() -> bool:
    """Whether this worker can make detached mounts (root, Linux 5.12+): what a warm sandbox
    takes each datum's folder as."""
    global _mount_api_works
    if _mount_api_works is None:
        with tempfile.TemporaryDirectory(prefix="herd-probe-") as folder:
            try:
                os.close(detached_mount(Path(folder), read_only=True))
                _mount_api_works = True
            except OSError as exc:
                log.debug("no detached mounts here (%s): one bwrap per datum", exc)
                _mount_api_works = False
    return _mount_api_works


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class ProcessRuntime:
    """Runtime running user code as local processes (embedded default).

    `protect`: folders user code must not see at all (the storage folder, the scratch root),
    given by whoever builds the runtime."""

    name = "local"

    def __init__(
        self, isolation: Isolation | str | None = None, base_env: dict[str, str] | None = None,
        protect: Iterable[Path | str] = (),
    ) -> None:
        forced = None if isolation in (None, "auto") else Isolation(isolation)
        self._forced = forced
        self._base_env = dict(BASE_ENV if base_env is None else base_env)
        self._protect = tuple(protect)

    @property
    def isolation(self) -> Isolation:
        """The isolation sessions use: forced in the constructor, else probed once."""
        return self._forced or detect_isolation()

    def open(self, pipeline: str, transform: UserCode) -> ProcessSession:
        """A session for one pipeline's transform; warns once when there is no sandbox."""
        isolation = self.isolation
        if isolation is Isolation.REWRITE:
            _warn_once("rewrite", (
                "no sandbox here (bwrap, or root for unshare): user code runs as a plain host process that "
                "can write wherever this worker's user can; /pfs is rewritten to the real datum folder in cmd, "
                "stdin and env only, and inputs are writable private copies"
            ))
        return ProcessSession(pipeline, transform, isolation, self._base_env, self._protect)


def _merge_env(*layers: dict[str, str]) -> dict[str, str]:
    """Later layers win. Any name execve takes is fine (`repo-1`, as Pachyderm allows): only
    an empty name, '=' or NUL cannot be passed (create-pipeline refuses those first)."""
    env: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.items():
            if not key or "=" in key or "\x00" in key:
                raise InvalidArgument(f"invalid environment variable name {key!r}")
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
