"""Finished commits of input branches, oldest first, read with as few storage calls as it takes.

A finished commit reachable from a branch head never changes, so the walk from a head down its
parents is cached: each reconcile pass costs one read per input branch (its head) plus one per
commit that is new since the last pass.
"""

from __future__ import annotations

from storage.errors import BranchNotFound, RepoNotFound
from storage.repos import Pfs
from scheduler.triggers import Finished


class Histories:
    """Per-process cache of input-branch histories (the last walk of each branch)."""

    def __init__(self, pfs: Pfs) -> None:
        self.pfs = pfs
        self._last: dict[tuple[str, str], tuple[str, list[Finished]]] = {}  # -> (head, oldest first)

    def finished(self, repo: str, branch: str) -> list[Finished]:
        """The branch's finished commits, oldest first; empty when the branch or repo is missing.

        Only "not found" means "no commits": an outage raises, so a pass never takes a storage
        error for "nothing to do" (pachyderm#4151: a job reported done with datums never run).
        """
        try:
            head = self.pfs.inspect_branch(repo, branch).head
        except (RepoNotFound, BranchNotFound):
            return []
        if head is None:
            return []
        cached_head, cached = self._last.get((repo, branch), (None, []))
        if head == cached_head:
            return cached
        newer: list[Finished] = []
        cid: str | None = head
        while cid is not None and cid != cached_head:
            commit = self.pfs.inspect_commit(repo, cid)
            # A head and its ancestors are finished: the open commit is Branch.open_commit.
            assert commit.finished is not None, f"{repo}@{commit.id} on the history of {branch} is not finished"
            newer.append(Finished(repo=repo, branch=branch, id=commit.id, finished=commit.finished))
            cid = commit.parent
        # Reached the last walk's head: extend it. Reached the root: the branch was moved
        # elsewhere, and the new walk is the whole history.
        walk = [*(cached if cid is not None else []), *reversed(newer)]
        self._last[(repo, branch)] = (head, walk)
        return walk
