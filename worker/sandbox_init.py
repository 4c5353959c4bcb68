"""The runner of one pipeline session: starts each datum's user code and makes sure nothing it
started outlives it (stdlib only).

ProcessRuntime starts this source once per session, as `python -I -S -c SOURCE CONFIG FD`
(CONFIG a JSON object, see `main`; FD one end of a Unix socket to the worker). It imports
nothing of herd and little of the standard library; a datum then costs one fork() of this
small process and an exec, not a Python start nor a sandbox build.

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
In both, for each datum the runner moves the datum's folder onto /pfs and its out/ onto /pfs/out
and mounts a fresh /tmp and /dev/shm; user code runs in its own session and IPC namespace with
no capability at all (empty bounding, ambient, inheritable, permitted and effective sets) and
no_new_privs, so it can neither undo a mount nor signal across users. When its first process
exits the runner kills every other process of the PID namespace (kill(-1), then waits until
none is left: all of them are reparented to it), unmounts the datum's folders, and only then
answers: no process of a datum ever sees the next datum's /pfs/out.
- "rewrite" (no namespace): the runner is a child subreaper; when user code exits, every
  process it left behind (setsid and double forks included) is reparented here and killed.
Datums run one at a time. The runner dies with the worker (PR_SET_PDEATHSIG, or bwrap's
--die-with-parent), and with it its PID namespace, so every datum process.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import sys
import time

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
SYS_CAPSET = {"x86_64": 126, "aarch64": 91, "riscv64": 91, "ppc64le": 184, "s390x": 185}
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
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
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


def _die_with_parent(parent: int) -> None:
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent and os.getppid() != parent:
        os._exit(137)  # the parent died before the prctl took effect


def _status(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _wait_for(pid: int) -> int:
    """Reap children until `pid` exits; its exit code (128 + signal when killed)."""
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return SETUP_FAILED
        if reaped == pid:
            return _status(status)


def _exec(argv: list[str], env: dict[str, str], cwd: str, failed: int | None) -> None:
    """chdir and exec in this process (PATH from user code's env); never returns.

    The PATH search is done here, not by os.execvpe, which imports modules lazily: after the
    switch to transform.user this interpreter's own files may be unreadable. `failed`: the exit
    code when the program cannot run (None: a shell's 127 or 126)."""
    name = argv[0]
    try:
        os.chdir(cwd)
    except OSError as exc:
        _cannot_run(name, cwd, exc, failed or 126)
    folders = [""] if "/" in name else env.get("PATH", os.defpath).split(":")
    first: OSError | None = None
    for folder in folders:
        try:
            os.execve(os.path.join(folder, name) if folder else name, argv, env)
        except OSError as exc:
            if first is None or (isinstance(first, FileNotFoundError) and not isinstance(exc, FileNotFoundError)):
                first = exc
    assert first is not None
    missing = isinstance(first, (FileNotFoundError, NotADirectoryError))
    _cannot_run(name, cwd, first, failed or (127 if missing else 126))


def _cannot_run(name: str, cwd: str, exc: OSError, code: int) -> None:
    os.write(2, f"herd: cannot run '{name}' (in '{cwd}'): {exc.strerror}: {exc.filename}\n".encode())
    os._exit(code)


def _switch_user(ids: list[int] | None) -> None:
    if ids:
        os.setgroups([])
        os.setgid(ids[1])
        os.setuid(ids[0])


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _empty_bounding_set() -> None:
    """No process started from here can gain a capability at exec (the runner's own effective
    set stays: it still mounts, kills and switches users); done once per session."""
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last + 1):
        _prctl(PR_CAPBSET_DROP, cap)
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def _drop_privileges(ids: list[int] | None) -> None:
    """No capabilities now or after exec (even as uid 0; the bounding set is already empty),
    no setuid gains, then the user."""
    _switch_user(ids)
    # Empty inheritable and permitted sets too: with an empty bounding set, exec as uid 0 gives
    # exactly the inheritable set, which must not be left to what the runner was started with.
    number = SYS_CAPSET.get(os.uname().machine, 126)
    data = (_CapData * 2)()
    _check(_libc.syscall(number, ctypes.byref(_CapHeader(LINUX_CAPABILITY_VERSION_3, 0)), data), "capset")
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def _build_root(root: str, config: dict) -> None:
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


def _set_up(config: dict) -> None:
    """The session's sandbox, before the first datum (see the modes above)."""
    _die_with_parent(config["parent"])
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # whatever a datum leaves is reparented here, then killed
    if config["mode"] == "rewrite":
        return
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
    _empty_bounding_set()


def _mount_datum(pfs: int, out: int) -> None:
    """The datum's folder read-only at /pfs, its out/ at /pfs/out, a fresh /tmp and /dev/shm."""
    for fd, target in ((pfs, "/pfs"), (out, "/pfs/out")):
        _check(_libc.syscall(SYS_MOVE_MOUNT, fd, b"", -100, os.fsencode(target), MOVE_MOUNT_F_EMPTY_PATH),
               f"move_mount {target}")
    for folder in ("/tmp", "/dev/shm"):
        _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")


def _unmount_datum() -> None:
    """Undo _mount_datum once every process of the datum is gone (the datum folder is let go)."""
    for folder in ("/pfs", "/tmp", "/dev/shm"):
        while _libc.umount2(os.fsencode(folder), MNT_DETACH) == 0:
            pass  # what is below is the session's empty folder again


def _quiet() -> None:
    """stderr to /dev/null: the worker no longer reads it."""
    os.dup2(os.open(os.devnull, os.O_RDWR), 2)


def _start_user(config: dict, request: dict, stdio: list[int]) -> None:
    """Become user code: its own session, its pipes as 0-2 and no other fd, then exec. In the
    namespace modes also its own IPC namespace, and no capability at all."""
    try:
        os.setsid()
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        os.closerange(3, 1 << 20)
        ids = request["ids"]
        if config["mode"] == "rewrite":
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            _switch_user(ids)
        else:
            _check(_libc.unshare(CLONE_NEWIPC), "unshare")  # no SysV object is left for the next datum
            _drop_privileges(ids)
    except OSError as exc:
        os.write(2, f"herd: cannot start user code: {exc}\n".encode())
        os._exit(SETUP_FAILED)
    _exec(request["argv"], request["env"], request["cwd"], config["exec_failed"])


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


def _receive(sock: socket.socket) -> tuple[dict, list[int]] | None:
    """One frame from the worker and the fds that came with it; None at EOF."""
    head, fds, _, _ = socket.recv_fds(sock, 4, MAX_FDS)
    while head and len(head) < 4:
        more = sock.recv(4 - len(head))
        head += more
        if not more:
            head = b""
    if len(head) < 4:
        for fd in fds:
            os.close(fd)
        return None
    size = int.from_bytes(head, "big")
    body = bytearray()
    while len(body) < size:
        chunk = sock.recv(min(size - len(body), 1 << 20))
        if not chunk:
            return None
        body += chunk
    return json.loads(body), fds


def _supervise(sock: socket.socket, pid: int) -> int | None:
    """Wait for a datum's first process; kill it when told. Its exit code, None at EOF."""
    pidfd = os.pidfd_open(pid)
    try:
        while True:
            ready, _, _ = select.select([sock, pidfd], [], [])
            if pidfd in ready:
                return _status(os.waitpid(pid, 0)[1])
            frame = _receive(sock)
            if frame is None or frame[0].get("kill"):
                os.kill(pid, signal.SIGKILL)  # the rest of the datum: serve's clean_up
                if frame is None:
                    return None
    finally:
        os.close(pidfd)


def serve(config: dict, sock: socket.socket) -> int:
    """Run datums as the worker sends them, until it closes the socket."""
    namespaced = config["mode"] != "rewrite"
    clean_up = _kill_namespace if namespaced else _kill_descendants
    # As PID 1 (the namespace modes) with no handler, no signal from user code reaches the
    # runner; the worker stops it with SIGKILL. Without a namespace, SIGTERM stops it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if not namespaced:
        signal.signal(signal.SIGTERM, lambda _n, _f: (clean_up(), os._exit(137)))
    sock.sendall(b"ready\n")
    while True:
        frame = _receive(sock)
        if frame is None:
            return 0
        request, fds = frame
        if request.get("kill") or len(fds) != (5 if namespaced else 3):
            for fd in fds:
                os.close(fd)
            continue  # a kill that came after its datum ended
        code = _run_datum(config, request, fds, sock)
        clean_up()
        if namespaced:
            _unmount_datum()
        if code is None:
            return 0
        sock.sendall(f"{code}\n".encode())


def _run_datum(config: dict, request: dict, fds: list[int], sock: socket.socket) -> int | None:
    """Start user code for one datum and wait for it; its exit code (None: the worker left)."""
    try:
        if len(fds) == 5:
            _mount_datum(fds[3], fds[4])
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                _start_user(config, request, fds[:3])
            finally:
                os._exit(SETUP_FAILED)
    except OSError as exc:
        os.write(fds[2], f"herd: cannot build the sandbox: {exc}\n".encode())
        return SETUP_FAILED
    finally:
        for fd in fds:
            os.close(fd)
    return _supervise(sock, pid)


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
