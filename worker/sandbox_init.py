"""The runner of one pipeline session: starts each datum's user code and makes sure nothing it
started outlives it (stdlib only).

ProcessRuntime starts this source once per session, as `python -I -S -c SOURCE CONFIG FD`
(CONFIG a JSON object, see `main`; FD one end of a Unix socket to the worker). It imports
nothing of herd and little of the standard library; a datum then costs a few mount calls and
one vfork and exec (subprocess, no Python in the child), not a Python start nor a sandbox build.

Protocol on the socket. Worker to runner: frames of a 4-byte big-endian length and a JSON body.
A datum is {"argv", "env", "cwd", "ids"} with, attached (SCM_RIGHTS), user code's stdin, stdout
and stderr, then, in the namespace modes, two detached mounts (open_tree clones made by the
worker): the datum folder, already read-only, and its out/. {"kill": 1} kills the running datum
(timeout). Runner to worker: "ready\\n" once set up, then one line per datum, its exit code,
written only when every process of the datum is gone. EOF either way ends the session.

Modes (CONFIG "mode"):
- "unshare" (root, no bwrap): the runner makes mount, PID, IPC and UTS namespaces (and a network
  one when the network is off) whose root is a read-only tmpfs of read-only binds of the host's
  top-level folders, the storage and scratch folders and /run hidden, pivots into it, and runs
  as PID 1 of the new PID namespace.
- "bwrap" (root): bubblewrap built that sandbox; the runner runs inside it, as PID 1.
In both, for each datum the runner moves the datum's folder onto /pfs and its out/ onto /pfs/out;
user code runs in its own session, a fresh /tmp, /dev/shm and IPC namespace, with no capability
at all (empty bounding, ambient, inheritable, permitted and effective sets) and no_new_privs, so
it can neither undo a mount nor signal across users. When its first process exits the runner
kills every other process of the PID namespace (kill(-1), then waits until none is left: all of
them are reparented to it), and only then answers; then it unmounts the datum's folders. No
process of a datum ever sees the next datum's /pfs/out.
- "rewrite" (no namespace): the runner is a child subreaper; when user code exits, every
  process it left behind (setsid and double forks included) is reparented here and killed.
Datums run one at a time. The runner dies with the worker (PR_SET_PDEATHSIG, or bwrap's
--die-with-parent), and with it its PID namespace, so every datum process; in rewrite mode
the worker's death sends it SIGTERM, on which it kills every process of the datum, then exits.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: the runner does not import typing at start
if TYPE_CHECKING:
    from typing import Any

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 24, 36, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
SYS_MOUNT_SETATTR, AT_RECURSIVE, MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID = 442, 0x8000, 1, 2
SYS_MOVE_MOUNT, MOVE_MOUNT_F_EMPTY_PATH = 429, 4
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
LINUX_CAPABILITY_VERSION_3 = 0x20080522
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
SETUP_FAILED = 126
MAX_FDS = 5

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else os.fsencode(s)

    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {source} on {target}")


def _prctl(option: int, arg: int, arg3: int = 0) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(arg3), 0, 0), f"prctl {option}")


def _read_only_tree(path: str) -> None:
    """Every mount at or under `path` read-only and nosuid (one syscall since Linux 5.12)."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    done = _libc.syscall(SYS_MOUNT_SETATTR, -100, os.fsencode(path), AT_RECURSIVE,
                         ctypes.byref(attr), ctypes.sizeof(attr))
    if done == 0:
        return
    with open("/proc/self/mountinfo", "rb") as info:  # older kernels: one remount per mount
        points = [os.fsdecode(_unescape(line.split()[4])) for line in info]
    for point in points:
        if point == path or point.startswith(path.rstrip("/") + "/"):
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)


def _unescape(field: bytes) -> bytes:
    for code in (b"\\040", b"\\011", b"\\012", b"\\134"):
        field = field.replace(code, bytes([int(code[1:], 8)]))
    return field


def _die_with_parent(parent: int, signum: int) -> None:
    _prctl(PR_SET_PDEATHSIG, signum)
    if parent and os.getppid() != parent:
        os._exit(137)  # the parent died before the prctl took effect


def _exit_code(returncode: int) -> int:
    """The shell's convention: 128 + signal for a process killed by a signal."""
    return 128 - returncode if returncode < 0 else returncode


def _wait_for(pid: int) -> int:
    """Reap children until `pid` exits; its exit code (128 + signal when killed)."""
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return SETUP_FAILED
        if reaped == pid:
            return _exit_code(os.waitstatus_to_exitcode(status))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_for_user_code() -> None:
    """Whatever this runner starts holds no capability after exec, even as uid 0, and can never
    gain one: empty bounding, ambient and inheritable sets, and no_new_privs. Done once per
    session: the runner keeps its own permitted and effective sets (it still mounts, kills and
    switches users), which exec does not pass on without those three."""
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last + 1):
        _prctl(PR_CAPBSET_DROP, cap)
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    header, data = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capget")
    for part in data:
        part.inheritable = 0
    _check(_libc.capset(ctypes.byref(header), data), "capset")
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def _build_root(root: str, config: dict[str, Any]) -> None:
    """The file system user code sees, assembled under `root` (a fresh tmpfs), all read-only
    but what each datum gets mounted over it (/pfs, /pfs/out, /tmp, /dev/shm); /proc is the
    PID namespace's, mounted by its init."""
    for name in sorted(os.listdir("/")):
        source, target = f"/{name}", f"{root}/{name}"
        if name in ("proc", "dev", "tmp", "pfs"):
            continue
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
        elif os.path.isdir(source):
            os.mkdir(target)
            _mount(source, target, None, MS_BIND | MS_REC)
        elif os.path.isfile(source):
            open(target, "wb").close()
            _mount(source, target, None, MS_BIND)
    for name in ("proc", "dev", "tmp", "pfs"):
        os.mkdir(f"{root}/{name}", 0o755)
    for hidden in config["hide"]:  # absolute real paths, none under /tmp (private anyway)
        if os.path.isdir(root + hidden):
            _mount("tmpfs", root + hidden, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    for shown in config["reveal"]:  # e.g. resolv.conf when it lives in the hidden /run
        os.makedirs(os.path.dirname(root + shown), exist_ok=True)
        open(root + shown, "wb").close()
        _mount(shown, root + shown, None, MS_BIND)
    _build_dev(f"{root}/dev")
    _read_only_tree(root)


def _build_dev(dev: str) -> None:
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            open(f"{dev}/{name}", "wb").close()
            _mount(f"/dev/{name}", f"{dev}/{name}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(f"{dev}/shm", 0o1777)
    os.chmod(f"{dev}/shm", 0o1777)


def _pivot(root: str) -> None:
    """Make `root` the root and detach the host's (chroot where pivot_root is unknown)."""
    os.chdir(root)
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is not None and _libc.syscall(number, b".", b".") == 0:
        _check(_libc.umount2(b".", MNT_DETACH), "umount old root")
    else:
        os.chroot(".")
    os.chdir("/")


def _set_up(config: dict[str, Any]) -> None:
    """The session's sandbox, before the first datum (see the modes above)."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # whatever a datum leaves is reparented here, then killed
    if config["mode"] == "rewrite":
        # SIGTERM, not SIGKILL: the runner's handler kills every process of the datum first
        # (all of them are its descendants); nothing else would, without a PID namespace.
        _die_with_parent(config["parent"], signal.SIGTERM)
        return
    _die_with_parent(config["parent"], signal.SIGKILL)
    if config["mode"] == "unshare":
        flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC
        _check(_libc.unshare(flags | (0 if config["network"] else CLONE_NEWNET)), "unshare")
    # Private: a datum's mounts must never propagate anywhere else.
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    if config["mode"] == "unshare":
        root = "/tmp"  # a mount point that exists everywhere; shadowed in this namespace only
        _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
        _build_root(root, config)
        runner = os.fork()  # PID 1 of the session's PID namespace: every datum process's reaper
        if runner:
            os.closerange(3, 1 << 20)  # the socket too: EOF for the worker when the runner dies
            _quiet()
            os._exit(_wait_for(runner))
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        _mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        for name in ("sys", "sysrq-trigger", "irq", "bus"):  # kernel knobs uid 0 could still write
            path = f"{root}/proc/{name}"
            if os.path.exists(path):
                _mount(path, path, None, MS_BIND | MS_REC)
                _read_only_tree(path)
        _pivot(root)
    else:  # bwrap's /dev is a writable tmpfs: no datum may leave a file there for the next
        _mount(None, "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
    os.chdir("/")
    _drop_for_user_code()


def _mount_datum(pfs: int, out: int) -> None:
    """The datum's folder read-only at /pfs, its out/ at /pfs/out."""
    for fd, target in ((pfs, "/pfs"), (out, "/pfs/out")):
        _check(_libc.syscall(SYS_MOVE_MOUNT, fd, b"", -100, os.fsencode(target), MOVE_MOUNT_F_EMPTY_PATH),
               f"move_mount {target}")


def _renew(first: bool) -> None:
    """Between datums, once every process of the last one is gone (after its answer, off the
    worker's path): let go of its folder, then a fresh /tmp, /dev/shm and IPC namespace (no
    file, SysV object or message queue of one datum is left for the next)."""
    for folder in ("/pfs", "/tmp", "/dev/shm"):
        while _libc.umount2(os.fsencode(folder), MNT_DETACH) == 0:
            pass  # what is below is the session's empty folder again
    if not first:  # the sandbox's own IPC namespace is new already
        _check(_libc.unshare(CLONE_NEWIPC), "unshare")
    for folder in ("/tmp", "/dev/shm"):
        _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")


def _quiet() -> None:
    """stderr to /dev/null: the worker no longer reads it."""
    os.dup2(os.open(os.devnull, os.O_RDWR), 2)


def _spawn_user(config: dict[str, Any], request: dict[str, Any], stdio: list[int]) -> subprocess.Popen[bytes] | int:
    """Start user code (vfork and exec, no Python in the child): its own session, its pipes
    as 0-2 and no other fd, default signal dispositions, transform.user when set. Returns the
    process, or the exit code when it could not start (the reason is on its stderr)."""
    ids, argv, cwd = request["ids"], request["argv"], request["cwd"]
    creds = {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}
    try:
        return subprocess.Popen(
            argv, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], cwd=cwd, env=request["env"],
            start_new_session=True, **creds,
        )
    except (OSError, ValueError) as exc:
        failed = config["exec_failed"]
        if isinstance(exc, ValueError) or exc.filename == cwd:  # a NUL, or no such working dir
            code = failed or 126
        else:
            code = failed or (127 if isinstance(exc, (FileNotFoundError, NotADirectoryError)) else 126)
        why = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) else str(exc)
        os.write(stdio[2], f"herd: cannot run '{argv[0]}' (in '{cwd}'): {why}\n".encode())
        return code


def _kill_namespace() -> None:
    """Kill every process of the session's PID namespace but this one, its init, and reap them
    (all are reparented here), until none is left."""
    me = os.getpid()
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass  # nobody left to signal
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        if not [name for name in os.listdir("/proc") if name.isdigit() and int(name) not in (1, me)]:
            return
        time.sleep(0.001)


def _kill_descendants() -> None:
    """Kill whatever a datum left (all reparented here, the subreaper) until none is left."""
    me = str(os.getpid())
    while True:
        for pid in _children(me):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return
        time.sleep(0.002)


def _children(me: str) -> list[int]:
    try:  # CONFIG_PROC_CHILDREN: one read (this process has one thread)
        with open(f"/proc/{me}/task/{me}/children", "rb") as listing:
            return [int(pid) for pid in listing.read().split()]
    except OSError:
        pass
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if fields[1].decode() == me:
                found.append(int(name))
    return found


class _Frames:
    """The worker's frames, read whole (one recvmsg for a datum, normally), with their fds."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.fds: list[int] = []

    def ready(self) -> bool:
        return len(self.buffer) >= 4 and len(self.buffer) >= 4 + int.from_bytes(self.buffer[:4], "big")

    def next(self) -> tuple[dict[str, Any], list[int]] | None:
        """The next frame and the fds that came with it; None at EOF."""
        while not self.ready():
            data, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, MAX_FDS)
            self.fds += fds
            if not data:
                for fd in self.fds:
                    os.close(fd)
                return None
            self.buffer += data
        size = int.from_bytes(self.buffer[:4], "big")
        body = bytes(self.buffer[4 : 4 + size])
        del self.buffer[: 4 + size]
        fds, self.fds = self.fds, []
        return json.loads(body), fds


def _supervise(frames: _Frames, user: subprocess.Popen[bytes]) -> int | None:
    """Wait for a datum's first process; kill it when told. Its exit code, None at EOF."""
    pidfd = os.pidfd_open(user.pid)
    try:
        while True:
            waitables: list[socket.socket | int] = [frames.sock, pidfd]
            ready = [] if frames.ready() else select.select(waitables, [], [])[0]
            if pidfd in ready:
                return _exit_code(user.wait())
            frame = frames.next()
            if frame is None or frame[0].get("kill"):
                user.kill()  # the rest of the datum: serve's clean_up
                if frame is None:
                    return None
    finally:
        os.close(pidfd)


def serve(config: dict[str, Any], sock: socket.socket) -> int:
    """Run datums as the worker sends them, until it closes the socket."""
    namespaced = config["mode"] != "rewrite"
    clean_up = _kill_namespace if namespaced else _kill_descendants
    # As PID 1 (the namespace modes) with no handler, no signal from user code reaches the
    # runner; the worker stops it with SIGKILL. Without a namespace, SIGTERM stops it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if not namespaced:
        signal.signal(signal.SIGTERM, lambda _n, _f: (clean_up(), os._exit(137)))
    else:
        _renew(first=True)
    sock.sendall(b"ready\n")
    frames = _Frames(sock)
    while True:
        frame = frames.next()
        if frame is None:
            return 0
        request, fds = frame
        if request.get("kill") or len(fds) != (5 if namespaced else 3):
            for fd in fds:
                os.close(fd)
            continue  # a kill that came after its datum ended
        code = _run_datum(config, request, fds, frames)
        clean_up()
        if code is None:
            return 0
        sock.sendall(f"{code}\n".encode())
        if namespaced:
            _renew(first=False)


def _run_datum(config: dict[str, Any], request: dict[str, Any], fds: list[int], frames: _Frames) -> int | None:
    """Start user code for one datum and wait for it; its exit code (None: the worker left)."""
    try:
        if len(fds) == 5:
            _mount_datum(fds[3], fds[4])
        user = _spawn_user(config, request, fds[:3])
    except OSError as exc:
        os.write(fds[2], f"herd: cannot build the sandbox: {exc}\n".encode())
        return SETUP_FAILED
    finally:
        for fd in fds:
            os.close(fd)
    return user if isinstance(user, int) else _supervise(frames, user)


def main(args: list[str]) -> int:
    """args: CONFIG (JSON: mode, parent, network, hide, reveal, exec_failed) and the socket's fd."""
    config = json.loads(args[0])
    sock = socket.socket(fileno=int(args[1]))
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    try:
        _set_up(config)
    except OSError as exc:
        sys.stderr.write(f"herd: cannot build the sandbox: {exc}\n")
        return SETUP_FAILED
    os.dup2(null, 2)
    return serve(config, sock)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
