"""Feed a user process its stdin, keep bounded tails of its output, enforce its deadline.

One `selectors` loop, no threads: stdin is written as the pipe drains (a large stdin cannot
deadlock against a full stdout), outputs keep only their last LOG_TAIL_BYTES, and the whole
process group is SIGKILLed at the deadline, and again when the leader exits, so no background
child outlives its datum or keeps writing to /pfs/out while outputs are collected.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Callable

from worker.runtime import LOG_TAIL_BYTES, LogSink

READ_CHUNK = 64 * 1024
# After a kill, how long to keep reading: a child that escaped the group may hold the pipes.
KILL_GRACE = 1.0
# How often an idle loop checks whether the leader exited (normally EOF ends the loop first).
IDLE_TICK = 0.05


class RunCancelled(Exception):
    """The worker is stopping (Ctrl-C, SIGTERM, shutdown) and killed a datum's user code.

    Not a HerdError on purpose: the datum was not judged, so no result is stored and it runs
    again later (its attempt's lease expires)."""


class _Tail:
    """The last `limit` bytes written to it; each chunk is also handed to the live-log sink."""

    def __init__(self, limit: int = LOG_TAIL_BYTES, stream: str = "stdout", sink: LogSink | None = None) -> None:
        self.limit = limit
        self.data = bytearray()
        self.stream, self.sink = stream, sink

    def add(self, chunk: bytes) -> None:
        if self.sink is not None:
            self.sink.write(self.stream, chunk)
        self.data += chunk
        if len(self.data) > 2 * self.limit:  # trim rarely: amortised O(1) per byte
            del self.data[: len(self.data) - self.limit]

    def value(self) -> bytes:
        return bytes(self.data[-self.limit :])


def kill_group(pgid: int) -> None:
    """SIGKILL every process of a group; a group already gone is fine."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _leader_exited(pid: int) -> bool:
    """Whether the process exited, without reaping it (a zombie leader keeps its group id)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def communicate(
    proc: subprocess.Popen[bytes], stdin: bytes, deadline: float | None, stop: Callable[[int], None] = kill_group,
    sink: LogSink | None = None,
) -> tuple[bytes, bytes, bool]:
    """Run `proc` (a new session) to its end or `deadline`; returns (stdout, stderr, timed_out).

    At the deadline `stop(proc.pid)` ends it: by default SIGKILL to its process group. What it
    prints goes to `sink` as it is read."""
    tails = {
        proc.stdout.fileno(): _Tail(stream="stdout", sink=sink),  # type: ignore[union-attr]
        proc.stderr.fileno(): _Tail(stream="stderr", sink=sink),  # type: ignore[union-attr]
    }
    selector = selectors.DefaultSelector()
    for fd in tails:
        selector.register(fd, selectors.EVENT_READ)
    pending = memoryview(stdin)
    if proc.stdin is not None:
        os.set_blocking(proc.stdin.fileno(), False)
        selector.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
    timed_out, stop_at = False, None
    with selector:
        while selector.get_map():
            now = time.monotonic()
            if deadline is not None and now >= deadline and not timed_out:
                timed_out, stop_at = True, now + KILL_GRACE
                stop(proc.pid)
            if stop_at is not None and now >= stop_at:
                break
            for key, _ in selector.select(_wait(now, deadline, stop_at)):
                if key.fd in tails:
                    _read(selector, key.fd, tails[key.fd])
                else:
                    pending = _write(selector, proc, pending)
            if stop_at is None and _leader_exited(proc.pid):
                kill_group(proc.pid)  # stragglers in the group would hold the pipes open
                stop_at = time.monotonic() + KILL_GRACE
    _close_pipes(proc)
    timed_out = _reap(proc, deadline) or timed_out
    out, err = (tail.value() for tail in tails.values())
    return out, err, timed_out


def _wait(now: float, deadline: float | None, stop_at: float | None) -> float:
    """How long one select may block: until the next tick, the deadline or the grace end."""
    limits = [IDLE_TICK] + [t - now for t in (deadline, stop_at) if t is not None]
    return max(0.0, min(limits))


def _read(selector: selectors.BaseSelector, fd: int, tail: _Tail) -> None:
    chunk = os.read(fd, READ_CHUNK)
    if chunk:
        tail.add(chunk)
    else:
        selector.unregister(fd)


def _write(selector: selectors.BaseSelector, proc: subprocess.Popen[bytes], pending: memoryview) -> memoryview:
    """Write what the pipe takes now; close stdin when all is written or the reader is gone."""
    assert proc.stdin is not None
    try:
        pending = pending[os.write(proc.stdin.fileno(), pending) :] if pending else pending
    except BlockingIOError:
        return pending
    except BrokenPipeError:
        pending = pending[len(pending) :]  # user code does not read stdin: that is its right
    if not pending:
        selector.unregister(proc.stdin.fileno())
        proc.stdin.close()
    return pending


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None and not pipe.closed:
            try:
                pipe.close()
            except BrokenPipeError:
                pass


def _reap(proc: subprocess.Popen[bytes], deadline: float | None) -> bool:
    """Wait for the leader (killing the group past the deadline); True when it had to be killed."""
    if _leader_exited(proc.pid):
        kill_group(proc.pid)  # while the zombie leader still pins the group id
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        proc.wait(timeout=timeout)
        killed = False
    except subprocess.TimeoutExpired:  # closed its output but kept running
        kill_group(proc.pid)
        proc.wait()
        killed = True
    kill_group(proc.pid)
    return killed


def pump(
    stdout: int, stderr: int, stdin: int | None, data: bytes, control: socket.socket, deadline: float | None,
    on_deadline: Callable[[], None], sink: LogSink | None = None,
) -> tuple[bytes, bytes, bytes | None, bool]:
    """Serve one datum started by a session runner: feed `data` to `stdin`, keep the tails of
    `stdout` and `stderr`, call `on_deadline` once past `deadline` (the runner then kills it),
    until `control` gives the datum's result line. Closes the three fds.

    Returns (stdout, stderr, result line or None when the runner went away, timed_out). The
    runner answers only once every process of the datum is gone, so the outputs end then too;
    they are still read for KILL_GRACE at most, in case a process escaped."""
    tails = {stdout: _Tail(stream="stdout", sink=sink), stderr: _Tail(stream="stderr", sink=sink)}
    selector = selectors.DefaultSelector()
    for fd in tails:
        selector.register(fd, selectors.EVENT_READ)
    selector.register(control, selectors.EVENT_READ)
    pending = memoryview(data)
    if stdin is not None:
        os.set_blocking(stdin, False)
        selector.register(stdin, selectors.EVENT_WRITE)
    answer, line, ended, control_fd = bytearray(), None, False, control.fileno()
    timed_out, stop_at, give_up = False, None, None
    try:
        with selector:
            while not ended or selector.get_map():
                now = time.monotonic()
                if deadline is not None and now >= deadline and not timed_out:
                    timed_out, give_up = True, now + 5 * KILL_GRACE
                    try:
                        on_deadline()
                    except OSError:
                        pass  # the runner is gone: the control socket says so next
                if (stop_at is not None and now >= stop_at) or (give_up is not None and now >= give_up):
                    break
                waits = (None if timed_out else deadline, stop_at, give_up)
                limits = [IDLE_TICK] + [t - now for t in waits if t is not None]
                for key, _ in selector.select(max(0.0, min(limits))):
                    if key.fd in tails:
                        _read(selector, key.fd, tails[key.fd])
                    elif key.fd == stdin:
                        pending = _write_fd(selector, stdin, pending)
                        if not pending:
                            stdin = None
                    elif key.fd == control_fd and not ended:
                        chunk = control.recv(64)
                        answer += chunk
                        if chunk and b"\n" not in answer:
                            continue
                        line = bytes(answer.split(b"\n", 1)[0]) if chunk else None
                        ended, stop_at = True, time.monotonic() + KILL_GRACE
                        selector.unregister(control)
                        if stdin is not None:  # user code is gone: nobody reads the rest
                            selector.unregister(stdin)
                            os.close(stdin)
                            stdin = None
    finally:
        for fd in (stdout, stderr) if stdin is None else (stdout, stderr, stdin):
            os.close(fd)
    out, err = (tail.value() for tail in tails.values())
    return out, err, line, timed_out


def _write_fd(selector: selectors.BaseSelector, fd: int, pending: memoryview) -> memoryview:
    """Write what the pipe takes now; close it when all is written or the reader is gone."""
    try:
        pending = pending[os.write(fd, pending) :] if pending else pending
    except BlockingIOError:
        return pending
    except BrokenPipeError:
        pending = pending[len(pending) :]  # user code does not read stdin: that is its right
    if not pending:
        selector.unregister(fd)
        os.close(fd)
    return pending


def exit_code(returncode: int) -> int:
    """The shell's convention: 128 + signal for a process killed by a signal (137 for SIGKILL)."""
    return 128 - returncode if returncode < 0 else returncode
