"""Branch heads: the one mutable record per branch, read and changed through `storage.cas`.

Every read and write of a branch goes through `layout.branch_key`, which validates both names,
so no path (put-file creating a branch, start-commit, create-branch, pipeline outputs) can
store a branch nobody can reach.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from storage.cas import MAX_TRIES, change_mutable, read_mutable, writer_id
from storage.layout import branch_key
from storage.model import Branch
from storage.objects import ObjectStore

T = TypeVar("T")


def read_branch(store: ObjectStore, repo: str, name: str) -> Branch | None:
    """The branch record, or None when the branch does not exist."""
    found = read_mutable(store, branch_key(repo, name), Branch)
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

    return change_mutable(store, branch_key(repo, name), Branch, decide, max_tries)


def change_branch(
    store: ObjectStore,
    repo: str,
    name: str,
    fn: Callable[[Branch | None], tuple[Branch | None, T]],
    max_tries: int = MAX_TRIES,
) -> T:
    """`change_mutable` on a branch head: `fn` gets the current branch (None when missing) and
    returns (the new one, whose generation and writer are filled in here, or None for no
    change; its result). It runs once per try, so any objects it writes must be safe to write
    again (bottom-up, unreachable until the CAS)."""

    def stamped(current: Branch | None) -> tuple[Branch | None, T]:
        new, result = fn(current)
        return (None if new is None else stamp(new, current)), result

    return change_mutable(store, branch_key(repo, name), Branch, stamped, max_tries)
