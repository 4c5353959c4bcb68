"""Mutable records (branch heads, open commits, pipeline infos, job statuses): read, then
compare-and-set with bounded retries.

The object store's CAS is dumb (`compare_and_set(key, token, body) -> bool`); the retry policy
lives here. Every body written carries a generation counter and a fresh writer id, so a body
never repeats and a stale S3 ETag can never match again (ABA).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from storage.errors import ConcurrentUpdateError
from storage.model import Record
from storage.objects import ObjectStore

MAX_TRIES = 50
BACKOFF_BASE = 0.002
BACKOFF_CAP = 0.1

R = TypeVar("R", bound=Record)
T = TypeVar("T")


def writer_id() -> str:
    """A writer id unique to this write: the pid for humans, a random nonce for uniqueness."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


def backoff(attempt: int) -> None:
    """Sleep a full-jitter exponential delay: spreads racing writers apart."""
    time.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * (2 ** min(attempt, 10)))))


def read_mutable(store: ObjectStore, key: str, model: type[R]) -> tuple[R, str] | None:
    """A mutable record and its CAS token, or None when the key is missing."""
    found = store.read_versioned(key)
    if found is None:
        return None
    body, token = found
    return model.from_bytes(body, key), token


def change_mutable(
    store: ObjectStore,
    key: str,
    model: type[R],
    fn: Callable[[R | None], tuple[R | None, T]],
    max_tries: int = MAX_TRIES,
) -> T:
    """Read `key`, let `fn` decide, CAS its new record; retry on a lost race; return what `fn`
    produced on the try that counted (the stored one, or the one that changed nothing).

    `fn(current)` returns (the new record, or None to leave it unchanged; a result for the
    caller). It may be called several times (once per try) and may raise to abort. Raises
    ConcurrentUpdateError after `max_tries` lost races.
    """
    for attempt in range(max_tries):
        found = read_mutable(store, key, model)
        current, token = found if found else (None, None)
        new, result = fn(current)
        if new is None or store.compare_and_set(key, token, new.canonical_bytes()):
            return result
        backoff(attempt)
    raise ConcurrentUpdateError(
        f"gave up updating '{key}' in {store.url} after {max_tries} concurrent updates; retry"
    )


def update_mutable(
    store: ObjectStore,
    key: str,
    model: type[R],
    fn: Callable[[R | None], R | None],
    max_tries: int = MAX_TRIES,
) -> R | None:
    """`change_mutable` whose result is the record as stored (`fn`'s new one, or the current)."""

    def decide(current: R | None) -> tuple[R | None, R | None]:
        new = fn(current)
        return new, current if new is None else new

    return change_mutable(store, key, model, decide, max_tries)
