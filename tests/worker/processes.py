"""Finding a datum's processes on the host, for the tests that prove none outlives it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from tests.fixtures.services import wait_until as _wait_until


def unique_sleep(seconds: int = 60) -> str:
    """A `sleep` argument no other process on the machine has: '60.<random digits>'."""
    return f"{seconds}.{uuid.uuid4().int % 10**12:012d}"


def processes_running(token: str) -> list[int]:
    """Pids of live (not zombie) `sleep <token>` processes (not the shells or sandboxes above them)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        argv = cmdline.split(b"\0")
        if os.path.basename(argv[0]) == b"sleep" and token.encode() in argv[1:] and state != b"Z":
            found.append(int(name))
    return found


def wait_until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll `check` until true; fail the test naming it after `timeout` seconds."""
    assert _wait_until(check, timeout=timeout, interval=0.02), f"not true within {timeout}s: {check}"
