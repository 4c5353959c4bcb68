"""Named crash points for crash-safety tests: `HERD_FAILPOINTS=name[:n][,name[:n]...]`.

`hit("finish.after_seal")` exits the process with status 137 (as SIGKILL would) on the n-th
hit of that name (default the first), without running any cleanup: no `finally`, no atexit,
no flush of buffered files. Unset, a hit costs one dict lookup. The variable is read once per
process, at import.
"""

from __future__ import annotations

import os
import threading

from storage.settings import FailpointSettings

EXIT_STATUS = 137
_lock = threading.Lock()
_counts: dict[str, int] = {}


def _parse(text: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, nth = item.partition(":")
        points[name] = int(nth) if nth.isdigit() and int(nth) > 0 else 1
    return points


_armed = _parse(FailpointSettings().failpoints)


def hit(name: str) -> None:
    """Exit the process at once when `name` is armed and this is its n-th hit."""
    if name not in _armed:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        if _counts[name] == _armed[name]:
            os._exit(EXIT_STATUS)


def arm(spec: str) -> None:
    """Re-arm from a spec string (tests in one process); an empty string disarms everything."""
    global _armed
    with _lock:
        _armed = _parse(spec)
        _counts.clear()
