"""Branch heads and other mutable records: read, then compare-and-set with bounded retries.

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
from storage.model import Branch, Record
from storage.objects import ObjectStore
from storage.paths import validate_name

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


def branch_key(repo: str, name: str) -> str:
    """Object key of a branch head; InvalidName for a name reads would refuse.

    Every read and write of a branch goes through here, so no path (put-file creating a
    branch, start-commit, create-branch, pipeline outputs) can store a branch nobody can reach.
    """
    validate_name(repo, "repo")
    validate_name(name, "branch")
    return f"repos/{repo}/branches/{name}"


def read_record(store: ObjectStore, key: str, model: type[R]) -> tuple[R, str] | None:
    """A record and its CAS token, or None when the key is missing."""
    found = store.read_versioned(key)
    if found is None:
        return None
    body, token = found
    return model.from_bytes(body, key), token


def change_record(
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
        found = read_record(store, key, model)
        current, token = found if found else (None, None)
        new, result = fn(current)
        if new is None or store.compare_and_set(key, token, new.canonical_bytes()):
            return result
        backoff(attempt)
    raise ConcurrentUpdateError(
        f"gave up updating '{key}' in {store.url} after {max_tries} concurrent updates; retry"
    )


def update_record(
    store: ObjectStore,
    key: str,
    model: type[R],
    fn: Callable[[R | None], R | None],
    max_tries: int = MAX_TRIES,
) -> R | None:
    """`change_record` whose result is the record as stored (`fn`'s new one, or the current)."""

    def decide(current: R | None) -> tuple[R | None, R | None]:
        new = fn(current)
        return new, current if new is None else new

    return change_record(store, key, model, decide, max_tries)


def read_branch(store: ObjectStore, repo: str, name: str) -> Branch | None:
    """The branch record, or None when the branch does not exist."""
    found = read_record(store, branch_key(repo, name), Branch)
    return found[0] if found else None


def stamp(branch: Branch, previous: Branch | None) -> Branch:
    """The branch with the next generation and a fresh writer id, so its body is new."""
    generation = (previous.generation if previous else 0) + 1
    return branch.model_copy(update={"generation": generation, "writer": writer_id()})


def update_branch(
    store: ObjectStore,
    repo: str,
    name: str,
    fn: Callable[[Branch | None], Branch | None],
    max_tries: int = MAX_TRIES,
) -> Branch | None:
    """Apply `fn` to the branch head with CAS and jittered retries; return the stored branch."""

    def decide(current: Branch | None) -> tuple[Branch | None, Branch | None]:
        new = fn(current)
        if new is None:
            return None, current
        stored = stamp(new, current)
        return stored, stored

    return change_record(store, branch_key(repo, name), Branch, decide, max_tries)


def change_branch(
    store: ObjectStore,
    repo: str,
    name: str,
    fn: Callable[[Branch | None], tuple[Branch | None, T]],
    max_tries: int = MAX_TRIES,
) -> T:
    """`change_record` on a branch head: `fn` gets the current branch (None when missing) and
    returns (the new one, whose generation and writer are filled in here, or None for no
    change; its result). It runs once per try, so any objects it writes must be safe to write
    again (bottom-up, unreachable until the CAS)."""

    def stamped(current: Branch | None) -> tuple[Branch | None, T]:
        new, result = fn(current)
        return (None if new is None else stamp(new, current)), result

    return change_record(store, branch_key(repo, name), Branch, stamped, max_tries)
