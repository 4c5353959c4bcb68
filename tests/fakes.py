"""Test doubles shared by several test folders, one copy each: a dispatcher that loses what it
is sent, a stream that gives short reads, and a hypothesis strategy of file trees.

Fakes stand in for what a test does not examine (a broker, a pipe); the part under test is
always the real one.
"""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

if TYPE_CHECKING:
    # Only for the annotations: storage tests import this module without loading the scheduler.
    from scheduler.messages import BatchOutcome, DatumBatch
    from scheduler.reconcile import Mark


class LosingDispatcher:
    """Keeps every batch sent and loses it, as a broker that died would: nothing stays in flight."""

    def __init__(self) -> None:
        self.batches: list[DatumBatch] = []

    def submit(self, batch: DatumBatch) -> None:
        self.batches.append(batch)

    def sent(self, job_id: str) -> list[Mark]:
        return []

    def forget(self, job_id: str, keys: tuple[str, ...]) -> None:
        pass

    def watch(self, job_id: str, datums: tuple[int, ...]) -> None:
        pass

    def queue_size(self) -> int:
        return 0

    def now(self) -> float:
        return time.time()

    def wait(self, timeout: float) -> list[BatchOutcome]:
        return []

    def close(self) -> None:
        pass


class ShortReads(io.RawIOBase):
    """A non-seekable stream that returns at most `step` bytes a read: what stdin, a pipe or an
    HTTP body gives, so readers must loop until EOF rather than trust one read."""

    def __init__(self, data: bytes, step: int = 50_000) -> None:
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data[self._pos : self._pos + min(len(buffer), self._step)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def valid_tree(paths: list[str]) -> list[str]:
    """Drop paths that would make a file also a directory (impossible in a manifest)."""
    out: list[str] = []
    for p in sorted(set(paths), key=len):
        if not any(p.startswith(q + "/") for q in out):
            out.append(p)
    return out


def file_trees(segment: st.SearchStrategy[str], *, max_depth: int, max_files: int) -> st.SearchStrategy[list[str]]:
    """Lists of absolute file paths made of `segment`s, at most `max_depth` deep, that form a
    tree a commit could hold (no path is both a file and a directory)."""
    path = st.lists(segment, min_size=1, max_size=max_depth).map(lambda s: "/" + "/".join(s))
    return st.lists(path, max_size=max_files).map(valid_tree)
