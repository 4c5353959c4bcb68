"""The S3 requests a benchmark's block made, counted by kind (S3ObjectStore.watch_requests: API
calls, so a call botocore retried counts once).

On S3 a trivial datum is bound by its requests: each costs botocore's CPU in herd's process and
the server's in its own, on the same 2 cores. Row 9's note gives them counted in its own run,
not a figure taken once by hand.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_ATTEMPT_RECORD = re.compile(r"jobs/[^/]+/attempts/[^/]+/[0-9]+")
_RESULT = re.compile(r"jobs/[^/]+/results/[^/]+")
_JOB_STATUS = re.compile(r"jobs/[^/]+/status")


def request_kind(operation: str, key: str) -> str:
    """What one S3 call was for, from its operation and its key below the store's prefix
    (storage/layout.py's names)."""
    if operation == "PutObject" and _ATTEMPT_RECORD.fullmatch(key):
        return "attempt claim"  # or its lease renewed by a heartbeat: datums here take milliseconds
    if key.startswith("jobs/") and "/attempts/" in key:
        return "attempt checks"
    if operation == "PutObject" and _RESULT.fullmatch(key):
        return "result"
    if _JOB_STATUS.fullmatch(key):
        return "job status"
    if key.startswith("packs/"):
        return "input pack"
    if operation == "ListObjectsV2":
        return "listing"
    return "other"


class RequestCount:
    """Requests by kind, from any thread."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, operation: str, key: str) -> None:
        kind = request_kind(operation, key)
        with self._lock:
            self.kinds[kind] += 1

    @contextmanager
    def watching(self, store: Any) -> Iterator[None]:
        """Count the calls `store` makes in this block (nothing for a store that is not S3)."""
        watch: Callable[[Callable[[str, str], None]], Callable[[], None]] | None = getattr(
            store, "watch_requests", None)
        stop = watch(self.add) if watch is not None else None
        try:
            yield
        finally:
            if stop is not None:
                stop()


def requests_note(kinds: Counter[str], datums: int) -> str:
    """'a datum made 2.38 S3 requests (counted in this run: attempt claim 1.00, result 1.00, ...)'."""
    total = sum(kinds.values())
    if not datums or not total:
        return "S3 requests not counted"
    shares = ", ".join(f"{kind} {count / datums:.2f}" for kind, count in kinds.most_common()
                       if count / datums >= 0.005)
    return f"a datum made {total / datums:.2f} S3 requests (counted in this run: {shares})"
