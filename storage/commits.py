"""Commits: reading records, matching ids, walking history, and the three ways to write.

Records: a repo's `repo.json`, branch heads, finished commits (immutable) and open commits
(OpenCommit, CAS-updated); manifests are shared, content-addressed (keys: storage/layout.py).
Writes go bottom-up: manifest, then commit record, then the branch CAS, so a branch head only
ever points at a finished commit whose manifest exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from enum import Enum
from typing import Literal

from storage import failpoints
from storage.branches import change_branch, read_branch, update_branch
from storage.cas import update_mutable, writer_id
from storage.errors import (
    CommitFinished,
    CommitNotFound,
    Conflict,
    DataCorrupted,
    InvalidArgument,
    InvalidPath,
    ObjectNotFound,
    RepoNotFound,
)
from storage.factory import ensure_format
from storage.layout import (
    LAYERS_FORMAT,
    REPOS_PREFIX,
    branches_prefix,
    commit_key,
    commits_prefix,
    manifest_key,
    open_key,
    open_prefix,
    repo_key,
)
from storage.model import (
    LAYER_SHARE,
    MAX_LAYERS,
    Branch,
    BranchRef,
    Commit,
    CommitRef,
    Manifest,
    ManifestLayer,
    Repo,
    sha256_hex,
    stored_manifest,
)
from storage.objects import ObjectStore
from storage.ops import FileOp, OpenCommit, apply_ops, effective_ops
from storage.paths import is_valid_name, validate_name
from storage.refnames import ID_LEN, resolve
from storage.trees import changed_files

_MANIFEST_CACHE = 256
_CACHE_FILES = 200_000


class _Head(Enum):
    HEAD = "HEAD"


# `parent=HEAD` means "the branch's current head", decided at commit time.
HEAD: Literal[_Head.HEAD] = _Head.HEAD
Parent = str | None | Literal[_Head.HEAD]


def now() -> datetime:
    """The current UTC time: the one clock of every record (commits, pipelines, jobs, attempts)."""
    return datetime.now(timezone.utc)


def new_id() -> str:
    """A fresh commit id: uuid4 hex, 32 characters."""
    return uuid.uuid4().hex


class Commits:
    """Commit-level operations over one ObjectStore; Pfs and Files build on it."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self._manifests: dict[str, Manifest] = {}
        self._depths: dict[str, int] = {}  # of the cached manifests: layers below each (0: whole)
        self._manifest_ids: dict[tuple[str, str], str] = {}
        self._cached_files = 0

    # ---- reading -------------------------------------------------------------------------

    def require_repo(self, repo: str) -> Repo:
        """The repo record; InvalidName or RepoNotFound."""
        validate_name(repo, "repo")
        try:
            return Repo.from_bytes(self.objects.get(repo_key(repo)), repo_key(repo))
        except ObjectNotFound:
            raise RepoNotFound(repo) from None

    def read_commit(self, repo: str, cid: str) -> Commit | None:
        """The finished commit record, or None."""
        found = self.objects.read_versioned(commit_key(repo, cid))
        return Commit.from_bytes(found[0], commit_key(repo, cid)) if found else None

    def read_open(self, repo: str, cid: str) -> OpenCommit | None:
        """The open-commit record, or None (it may be stale or orphaned: see get_commit)."""
        found = self.objects.read_versioned(open_key(repo, cid))
        return OpenCommit.from_bytes(found[0], open_key(repo, cid)) if found else None

    def finished_commit(self, repo: str, cid: str) -> Commit:
        """A finished commit record by id (heads and parents); CommitNotFound when missing."""
        commit = self.read_commit(repo, cid)
        if commit is None:
            raise CommitNotFound(repo, cid)
        return commit

    def forget(self) -> None:
        """Drop cached commit lookups (after a repo is deleted its ids mean nothing)."""
        self._manifest_ids.clear()

    def get_commit(self, repo: str, cid: str) -> Commit:
        """A commit by full id: the open view (finished None) while its branch claims it.

        An open record is live only while its branch's `open_commit` names it. A sealed one
        (a finish that crashed before landing) is landed here; a stale one (landed, crashed
        before its record was removed) is removed; an unclaimed unsealed one is an orphan of a
        crashed start-commit whose id nobody was given, so it does not exist.
        """
        pending = self.read_open(repo, cid)
        if pending is not None:
            branch = self._owner(pending)
            if branch is not None and branch.open_commit == cid:
                if not pending.sealed or self.complete(pending) is None:
                    return self.open_view(pending, branch)
            elif pending.sealed and self.read_commit(repo, cid) is not None:
                self.objects.delete(open_key(repo, cid))
        commit = self.read_commit(repo, cid)
        if commit is None:
            raise CommitNotFound(repo, cid)
        return commit

    def _owner(self, pending: OpenCommit) -> Branch | None:
        return read_branch(self.objects, pending.commit.repo, pending.commit.branch or "master")

    def open_view(self, pending: OpenCommit, branch: Branch | None) -> Commit:
        """The open commit as readers see it: its parent is the head it will be replayed on."""
        if pending.fixed_parent or branch is None:
            return pending.commit
        return pending.commit.model_copy(update={"parent": branch.head})

    def branch_state(self, repo: str, name: str) -> tuple[Branch | None, OpenCommit | None]:
        """The branch and its live open commit, after finishing what a crash left half done.

        Every command that names a branch comes through here (reads too), so a finish killed
        after sealing is landed by the next command, and a claim whose record is gone is
        released: no branch stays wedged and no commit stays open forever by accident.
        """
        branch = read_branch(self.objects, repo, name)
        if branch is None or branch.open_commit is None:
            return branch, None
        cid = branch.open_commit
        pending = self.read_open(repo, cid)
        if pending is not None and not pending.sealed:
            return branch, pending
        if pending is not None:
            if self.complete(pending) is None:  # replay clashes: it was unsealed, stays open
                return branch, self.read_open(repo, cid)
        else:
            self._release(repo, name, cid)
        branch = read_branch(self.objects, repo, name)
        if branch is None or branch.open_commit is None:
            return branch, None
        return branch, self.read_open(repo, branch.open_commit)

    def settle_branch(self, repo: str, name: str) -> Branch | None:
        """The branch record after `branch_state`'s repairs (None when it does not exist)."""
        return self.branch_state(repo, name)[0]

    def _release(self, repo: str, name: str, cid: str) -> None:
        """Drop a claim on `cid` whose open record no longer exists (CAS: only that claim).

        When `cid` landed meanwhile (a branch set to another branch's open commit, whose finish
        was killed before it moved this one), the branch follows it, as finish would have."""
        landed = self.read_commit(repo, cid) is not None

        def release(cur: Branch | None) -> Branch | None:
            if cur is None or cur.open_commit != cid:
                return None
            return cur.model_copy(update={"open_commit": None, "head": cid if landed else cur.head})

        update_branch(self.objects, repo, name, release)

    def read_manifest(self, commit: Commit) -> Manifest:
        """The manifest of a finished commit (empty for a commit without one)."""
        if commit.finished is None:
            raise InvalidArgument(
                f"commit '{commit.id}' in repo '{commit.repo}' is still open: "
                "finish it before reading its files"
            )
        return self.manifest(commit.manifest)

    def view_manifest(self, commit: Commit) -> Manifest:
        """What a commit holds: a finished one's manifest, or an open one's tree as it would be
        if finished now (its ops replayed on the head it builds on; Pachyderm 1.9 reads open
        commits). A commit finished meanwhile is read as finished."""
        if commit.finished is not None:
            return self.manifest(commit.manifest)
        pending = self.read_open(commit.repo, commit.id)
        if pending is None or pending.sealed:
            return self.read_manifest(self.get_commit(commit.repo, commit.id))
        branch = self._owner(pending)
        base = pending.commit.parent if pending.fixed_parent or branch is None else branch.head
        return apply_ops(self.manifest_at(commit.repo, base), pending.changes, check=False)

    def manifest(self, mid: str | None) -> Manifest:
        """A manifest by id, whole, cached: it is content-addressed, hence immutable (a layer is
        resolved on the manifests below it, each checked against its id)."""
        if mid is None:
            return Manifest()
        return self._manifest(mid, MAX_LAYERS)

    def _manifest(self, mid: str, deepest: int) -> Manifest:
        cached = self._manifests.get(mid)
        if cached is not None and self._depths.get(mid, 0) <= deepest:
            return cached
        key = manifest_key(mid)
        record = stored_manifest(self.objects.get(key), key, mid)
        depth = record.depth if isinstance(record, ManifestLayer) else 0
        if depth > deepest:
            raise DataCorrupted(
                f"manifest record '{key}' is a layer {depth} deep where at most {deepest} can be "
                "(a chain of layers that loops or is too long); run 'herd fsck'"
            )
        manifest = record.on(self._manifest(record.base, depth - 1)) if isinstance(record, ManifestLayer) else record
        self._cache_manifest(mid, manifest, depth)
        return manifest

    def _manifest_id_at(self, repo: str, cid: str | None) -> str | None:
        """The manifest id of a finished commit id (None for None, or a commit without files).

        Only heads and their parents come here, and a reachable commit record never changes,
        so its manifest id is cached (saves a GET per try in every CAS loop).
        """
        if cid is None:
            return None
        mid = self._manifest_ids.get((repo, cid))
        if mid is None:
            commit = self.read_commit(repo, cid)
            if commit is None:
                raise CommitNotFound(repo, cid)
            if len(self._manifest_ids) >= _MANIFEST_CACHE:
                self._manifest_ids.clear()
            mid = self._manifest_ids[(repo, cid)] = commit.manifest or ""
        return mid or None

    def manifest_at(self, repo: str, cid: str | None) -> Manifest:
        """The manifest of a finished commit id (empty for None)."""
        return self.manifest(self._manifest_id_at(repo, cid))

    def write_manifest(self, manifest: Manifest, base: str | None = None) -> str:
        """Store a manifest create-only at its content hash; returns the id. With `base` (the
        id of the manifest it was built from, just read) and a change small beside it, what
        changed is stored, as a layer on `base` (storage format 4).

        Written even when cached: in a long-lived process the cached copy may be one that
        garbage-collect has since removed (unreachable for longer than its grace period).
        """
        layer = self._layer(manifest, base) if base is not None else None
        if layer is not None:
            ensure_format(self.objects, LAYERS_FORMAT)  # an older herd would read the layer as the whole
            data, depth = layer.canonical_bytes(), layer.depth
        else:
            data, depth = manifest.canonical_bytes(), 0  # once: 100,000 files take a second to serialise
        mid = sha256_hex(data)
        self.objects.put_if_absent(manifest_key(mid), data)
        if mid not in self._manifests:
            self._cache_manifest(mid, manifest, depth)
        return mid

    def _layer(self, manifest: Manifest, base_id: str) -> ManifestLayer | None:
        """`manifest` as a layer on manifest `base_id`, or None when it is better stored whole:
        the chain would pass MAX_LAYERS, or more than 1/LAYER_SHARE of its files changed."""
        base = self.manifest(base_id)
        depth = self._depths.get(base_id, 0)
        old, new = base.files, manifest.files
        if depth >= MAX_LAYERS or not old:
            return None
        deleted = tuple(old.keys() - new.keys())
        if len(deleted) * LAYER_SHARE > len(new):
            return None
        changed = changed_files(old, new)
        if (len(changed) + len(deleted)) * LAYER_SHARE > len(new):
            return None
        return ManifestLayer(base=base_id, depth=depth + 1, deleted=deleted, files=changed)

    def _cache_manifest(self, mid: str, manifest: Manifest, depth: int) -> None:
        # Bounded by files, not manifests: one manifest may list 100,000 files.
        if len(self._manifests) >= _MANIFEST_CACHE or self._cached_files > _CACHE_FILES:
            self._manifests.clear()
            self._depths.clear()
            self._cached_files = 0
        self._manifests[mid] = manifest
        self._depths[mid] = depth
        self._cached_files += len(manifest.files)

    # ---- ids and history -----------------------------------------------------------------

    def match_id(self, repo: str, prefix: str) -> str:
        """The one commit id (open or finished) starting with `prefix`; a full id is cheap."""
        if len(prefix) == ID_LEN:
            return prefix
        ids = {key.rsplit("/", 1)[1] for folder in (commits_prefix(repo), open_prefix(repo))
               for key in self.objects.list(folder + prefix)}
        if not ids:
            raise CommitNotFound(repo, prefix)
        if len(ids) > 1:
            raise InvalidArgument(
                f"commit prefix '{prefix}' is ambiguous in repo '{repo}' ({len(ids)} commits)"
            )
        return ids.pop()

    def history(self, commit: Commit) -> Iterator[Commit]:
        """`commit`, then its ancestors, newest first, by parent pointers."""
        current: Commit | None = commit
        while current is not None:
            yield current
            # Every parent is finished (an open commit's parent is a head it started from).
            current = self.finished_commit(current.repo, current.parent) if current.parent else None

    def open_commits(self, repo: str, branch: str | None = None) -> list[Commit]:
        """The open commits of a repo (or of one branch), newest first: one per branch at most."""
        if branch is not None:
            names = [branch]
        else:
            names = [name for name in self.objects.list_children(branches_prefix(repo))
                     if not name.endswith("/") and is_valid_name(name)]
        found: dict[str, Commit] = {}
        for name in names:
            current, pending = self.branch_state(repo, name)
            if pending is not None and pending.commit.id not in found:  # followers share one
                owner = current if pending.commit.branch == name else self._owner(pending)
                found[pending.commit.id] = self.open_view(pending, owner)
        return sorted(found.values(), key=lambda c: c.started, reverse=True)

    def is_ancestor(self, repo: str, cid: str, head: str | None, stop: str | None) -> bool:
        """Whether `cid` is `head` or above `stop` in head's history (a short walk)."""
        current = head
        while current is not None and current != stop:
            if current == cid:
                return True
            record = self.read_commit(repo, current)
            current = record.parent if record else None
        return False

    # ---- writing: a finished commit in one step ------------------------------------------

    def commit_on_branch(
        self,
        repo: str,
        branch: str,
        build: Callable[[Manifest], Manifest],
        *,
        description: str = "",
        provenance: Sequence[CommitRef] = (),
        failed_reason: str | None = None,
        parent: Parent = HEAD,
        commit_id: str | None = None,
    ) -> Commit:
        """Build a manifest on the head (or `parent`), write a fresh commit, CAS the branch.

        Each try after a lost race rebuilds on the new head under a fresh id, so the
        orphaned record of a lost try is unreachable garbage, never a wrong parent. With a
        fixed `commit_id` (pipeline outputs) the call is idempotent: when that commit is
        already in the branch's history it is returned as is; otherwise a record left by a lost
        try or a crashed call is unreachable, so it is rewritten on the current head.
        """
        validate_name(branch, "branch")
        started = now()
        failpoints.hit("commit.before_manifest")  # put-file/delete-file: blobs are stored

        def advance(current: Branch | None) -> tuple[Branch | None, Commit]:
            head = current.head if current else None
            if commit_id is not None:
                earlier = self.read_commit(repo, commit_id)
                if earlier is not None and self.is_ancestor(repo, commit_id, head, earlier.parent):
                    return None, earlier
            base = head if parent is HEAD else parent
            base_id = self._manifest_id_at(repo, base)
            manifest = build(self.manifest(base_id))
            commit = Commit(
                id=commit_id or new_id(), repo=repo, branch=branch, parent=base, started=started,
                finished=now(), size=manifest.size, description=description,
                provenance=tuple(provenance), manifest=self.write_manifest(manifest, base_id),
                failed_reason=failed_reason,
            )
            failpoints.hit("commit.after_manifest")
            if commit_id is None:
                self.objects.put_if_absent(commit_key(repo, commit.id), commit.canonical_bytes())
            else:
                self.objects.put(commit_key(repo, commit.id), commit.canonical_bytes())
            failpoints.hit("commit.after_commit_record")
            return (current or Branch(repo=repo, name=branch)).model_copy(update={"head": commit.id}), commit

        return change_branch(self.objects, repo, branch, advance)

    # ---- writing: open commits -----------------------------------------------------------
    #
    # A branch has at most one open commit, named by `Branch.open_commit`. start-commit writes
    # the open record first (unreachable), then claims the branch with CAS, so two racing
    # starts cannot both win and a claim always names an existing record. finish seals the
    # record, lands it (commit record, then ONE branch CAS that moves the head and drops the
    # claim together) and removes the record. A crash at any step is finished or undone by
    # the next command naming the branch (branch_state) or the commit (get_commit).

    def start(
        self,
        repo: str,
        branch: str,
        parent: str | None = None,
        description: str = "",
        provenance: Sequence[CommitRef] = (),
    ) -> Commit:
        """Open a commit on `branch` (created if missing); Conflict while one is already open."""
        self.require_repo(repo)
        validate_name(branch, "branch")
        for ref in provenance:
            validate_name(ref.repo, "repo")
        base = resolve(self, repo, parent) if parent is not None else None
        if base is not None and base.finished is None:
            raise InvalidArgument(f"parent commit '{base.id}' in repo '{repo}' is still open")
        current, pending = self.branch_state(repo, branch)
        if pending is not None:
            raise already_open(repo, branch, pending.commit.id)
        commit = Commit(
            id=new_id(), repo=repo, branch=branch,
            parent=base.id if base else (current.head if current else None),
            started=now(), description=description, provenance=tuple(provenance),
        )
        record = OpenCommit(commit=commit, fixed_parent=base is not None, writer=writer_id())
        key = open_key(repo, commit.id)
        self.objects.put_if_absent(key, record.canonical_bytes())
        failpoints.hit("start-commit.after_open_record")

        def claim(cur: Branch | None) -> Branch:
            if cur is not None and cur.open_commit is not None:
                raise already_open(repo, branch, cur.open_commit)
            return (cur or Branch(repo=repo, name=branch)).model_copy(
                update={"open_commit": commit.id})

        try:
            update_branch(self.objects, repo, branch, claim)
        except Conflict:
            self.objects.delete(key)  # lost the race: our record was never reachable
            raise
        return commit

    def _gone(self, repo: str, cid: str) -> CommitFinished | CommitNotFound:
        """The error for an open record that is missing: finished, or never existed."""
        if self.read_commit(repo, cid) is not None:
            return CommitFinished(repo, cid)
        return CommitNotFound(repo, cid)

    def _live(self, repo: str, cid: str) -> Commit:
        """The open view of `cid` (crash leftovers repaired); CommitFinished / CommitNotFound."""
        commit = self.get_commit(repo, cid)
        if commit.finished is not None:
            raise CommitFinished(repo, cid)
        return commit

    def check_ops(self, pending: OpenCommit, ops: Sequence[FileOp]) -> list[FileOp]:
        """Dry-run new ops on what the open commit would hold if finished now; the ops to keep.

        The commit must still be its branch's open commit (else CommitFinished or
        CommitNotFound). Recorded ops replay leniently (a concurrent commit may have removed
        what they delete); a new delete that finds nothing is a no-op (Pachyderm 1.x) and is
        dropped; only the end state must be clash free, so a later op can repair an earlier one.
        """
        commit = pending.commit
        branch = read_branch(self.objects, commit.repo, commit.branch or "master")
        if branch is None or branch.open_commit != commit.id:
            raise self._gone(commit.repo, commit.id)
        base = commit.parent if pending.fixed_parent else branch.head
        view = apply_ops(self.manifest_at(commit.repo, base), pending.changes, check=False)
        kept = effective_ops(view, ops)
        apply_ops(view, kept, strict=(commit.repo, commit.id))
        return kept

    def add_ops(self, repo: str, cid: str, ops: Sequence[FileOp], checked: bool = True) -> Commit:
        """Append ops to an open commit with CAS (concurrent writers all kept)."""
        failpoints.hit("open-commit.before_update")  # put-file: blobs are stored

        def extend(current: OpenCommit | None) -> OpenCommit | None:
            if current is None or current.sealed:
                raise self._gone(repo, cid) if current is None else CommitFinished(repo, cid)
            kept = self.check_ops(current, ops) if checked else list(ops)
            if not kept:
                return None  # only no-op deletes: nothing to record
            return current.model_copy(update={
                "changes": current.changes + tuple(kept),
                "generation": current.generation + 1, "writer": writer_id(),
            })

        try:
            stored = update_mutable(self.objects, open_key(repo, cid), OpenCommit, extend)
        except CommitFinished:
            self.get_commit(repo, cid)  # a finish killed after sealing: land it now
            raise
        if stored is None:
            raise self._gone(repo, cid)
        return stored.commit

    def finish(
        self, repo: str, cid: str, description: str | None = None, failed_reason: str | None = None
    ) -> Commit:
        """Seal the open commit, replay its ops on the branch's current head, CAS, clean up."""
        self._live(repo, cid)
        pending = self._seal(repo, cid, description, failed_reason)
        failpoints.hit("finish-commit.after_seal")
        commit = self.complete(pending, raise_clash=True)
        assert commit is not None
        return commit

    def complete(self, pending: OpenCommit, raise_clash: bool = False) -> Commit | None:
        """Land a sealed open commit and remove its record; idempotent, so any process may.

        When its changes clash with the current head it is unsealed (open again, repairable)
        and Conflict is raised (`raise_clash`) or None returned.
        """
        repo, cid = pending.commit.repo, pending.commit.id
        try:
            commit = self._land(pending)
        except InvalidPath as exc:
            self._unseal(repo, cid)
            if not raise_clash:
                return None
            raise Conflict(f"cannot finish commit '{cid}' in repo '{repo}': {exc}") from None
        failpoints.hit("finish-commit.after_branch")
        for name in pending.followers:  # before the record goes: a crash here is redone
            self.follow_landed(repo, name, cid)
        self.objects.delete(open_key(repo, cid))
        return commit

    def follow_landed(self, repo: str, name: str, cid: str) -> None:
        """Move a branch still set to open commit `cid` onto it, now that it has landed."""
        update_branch(
            self.objects, repo, name,
            lambda cur: cur.model_copy(update={"head": cid, "open_commit": None})
            if cur is not None and cur.open_commit == cid else None,
        )

    def set_to_open(self, repo: str, name: str, cid: str, provenance: Sequence[BranchRef]) -> Branch:
        """Set branch `name` to open commit `cid` (1.4's SetBranch allowed open commits).

        The branch claims the commit as its open one, so put-file, delete-file and finish-commit
        of the branch act on it, and reads of the branch see the head the commit builds on, as
        for its own branch. The follower is recorded in the open record first, then claimed:
        finishing moves every follower still claiming it, and a follower whose claim outlived
        the record moves by itself (`_release`). CommitFinished when the commit is finishing.
        """
        own = self.branch_state(repo, name)[1]
        if own is not None and own.commit.id != cid:  # refused before the first write
            raise already_open(repo, name, own.commit.id)

        def add(current: OpenCommit | None) -> OpenCommit | None:
            if current is None:
                raise self._gone(repo, cid)
            if current.sealed:
                raise CommitFinished(repo, cid)
            if name == current.commit.branch or name in current.followers:
                return None
            return current.model_copy(update={
                "followers": current.followers + (name,),
                "generation": current.generation + 1, "writer": writer_id(),
            })

        update_mutable(self.objects, open_key(repo, cid), OpenCommit, add)
        pending = self.read_open(repo, cid)
        if pending is None:
            raise self._gone(repo, cid)
        base = self.open_view(pending, self._owner(pending)).parent

        def claim(cur: Branch | None) -> Branch:
            if cur is not None and cur.open_commit not in (None, cid):
                raise already_open(repo, name, cur.open_commit or "")
            fields: dict[str, object] = {"open_commit": cid, "provenance": tuple(provenance)}
            if name != pending.commit.branch:
                fields["head"] = base
            return (cur or Branch(repo=repo, name=name)).model_copy(update=fields)

        stored = update_branch(self.objects, repo, name, claim)
        assert stored is not None
        return stored

    def _seal(
        self, repo: str, cid: str, description: str | None, failed_reason: str | None
    ) -> OpenCommit:
        """Mark the open record finishing so no later put is silently dropped."""

        def seal(current: OpenCommit | None) -> OpenCommit:
            if current is None:
                raise self._gone(repo, cid)
            updates: dict[str, object] = {}
            if description is not None:
                updates["description"] = description
            if failed_reason is not None:
                updates["failed_reason"] = failed_reason
            return current.model_copy(update={
                "commit": current.commit.model_copy(update=updates), "sealed": True,
                "finished": current.finished or now(),
                "generation": current.generation + 1, "writer": writer_id(),
            })

        stored = update_mutable(self.objects, open_key(repo, cid), OpenCommit, seal)
        assert stored is not None
        return stored

    def _unseal(self, repo: str, cid: str) -> None:
        def unseal(current: OpenCommit | None) -> OpenCommit | None:
            if current is None:
                return None
            return current.model_copy(update={
                "sealed": False, "finished": None,
                "generation": current.generation + 1, "writer": writer_id(),
            })

        update_mutable(self.objects, open_key(repo, cid), OpenCommit, unseal)

    def _land(self, pending: OpenCommit) -> Commit:
        """The branch CAS loop of finish; the commit id is fixed, so a lost try rewrites it.

        The record written is the same bytes from every process landing the same commit on the
        same head (the finish time was fixed at seal), so a repairing process racing the
        original finisher cannot change a reachable record.
        """
        draft, repo = pending.commit, pending.commit.repo
        branch_name = draft.branch or "master"
        finished = pending.finished or now()

        def advance(current: Branch | None) -> tuple[Branch | None, Commit]:
            head = current.head if current else None
            claimed = current is not None and current.open_commit == draft.id
            earlier = self.read_commit(repo, draft.id)
            if earlier is not None and self.is_ancestor(repo, draft.id, head, earlier.parent):
                # An earlier try (or another finisher) already landed it.
                if claimed and current is not None:
                    return current.model_copy(update={"open_commit": None}), earlier
                return None, earlier
            base = draft.parent if pending.fixed_parent else head
            base_id = self._manifest_id_at(repo, base)
            manifest = apply_ops(self.manifest(base_id), pending.changes)
            commit = draft.model_copy(update={
                "parent": base, "finished": finished, "size": manifest.size,
                "manifest": self.write_manifest(manifest, base_id),
            })
            failpoints.hit("finish-commit.after_manifest")
            # Unreachable until the CAS below, so rewriting a lost try's record is safe.
            self.objects.put(commit_key(repo, draft.id), commit.canonical_bytes())
            failpoints.hit("finish-commit.after_commit_record")
            # One CAS moves the head and drops the claim: never a head without its commit,
            # never a finished commit still claimed as open.
            return (current or Branch(repo=repo, name=branch_name)).model_copy(update={
                "head": draft.id,
                "open_commit": None if claimed or current is None else current.open_commit,
            }), commit

        return change_branch(self.objects, repo, branch_name, advance)


class _Deleting:
    """delete-commit's checks and steps, kept apart from the write paths above."""

    def __init__(self, commits: Commits) -> None:
        self.commits = commits
        self.objects = commits.objects

    def records(self, repo: str) -> Iterator[Commit]:
        """Every finished commit record of a repo (a scan: delete-commit is rare)."""
        for key in list(self.objects.list(commits_prefix(repo))):
            found = self.objects.read_versioned(key)
            if found is not None:
                yield Commit.from_bytes(found[0], key)

    def branches(self, repo: str) -> list[Branch]:
        names = [name for name in self.objects.list_children(branches_prefix(repo))
                 if not name.endswith("/") and is_valid_name(name)]
        return [b for b in (self.commits.settle_branch(repo, n) for n in names) if b is not None]

    def refuse_dependants(self, commit: Commit) -> None:
        """Conflict naming the first child or provenance dependant of a finished commit.

        Herd's commit records are immutable, so a child cannot be re-parented and a downstream
        commit cannot lose a provenance entry: those are deleted first (docs/pachyderm-differences.md).
        """
        self.refuse_children(commit)
        repo, cid = commit.repo, commit.id
        for child in self.objects.list_children(REPOS_PREFIX):
            other_repo = child[:-1]
            if not child.endswith("/") or not is_valid_name(other_repo):
                continue
            for other in self.records(other_repo):
                if any(ref.repo == repo and ref.id == cid for ref in other.provenance):
                    raise Conflict(
                        f"commit '{cid}' in repo '{repo}' is in the provenance of commit "
                        f"'{other.id}' in repo '{other_repo}': delete that commit first"
                    )

    def refuse_children(self, commit: Commit) -> None:
        """Conflict naming the first commit (finished or open) whose parent it is."""
        repo, cid = commit.repo, commit.id
        for other in self.records(repo):
            if other.parent == cid:
                raise Conflict(
                    f"commit '{cid}' in repo '{repo}' has child commit '{other.id}': "
                    "delete the newer commits first"
                )
        for opened in self.commits.open_commits(repo):
            if opened.parent == cid:
                raise Conflict(
                    f"commit '{cid}' in repo '{repo}' is the parent of open commit '{opened.id}': "
                    "finish or delete that commit first"
                )

    def discard_open(self, commit: Commit) -> None:
        """Drop an open commit: every claim on it (its branch's, followers'), then its record."""
        repo, cid = commit.repo, commit.id
        for branch in self.branches(repo):
            if branch.open_commit == cid:
                self.commits._release(repo, branch.name, cid)
        failpoints.hit("delete-commit.after_branches")
        self.objects.delete(open_key(repo, cid))

    def delete_finished(self, commit: Commit) -> None:
        """Move every branch whose head it is to its parent (CAS), then delete its record."""
        repo, cid = commit.repo, commit.id
        self.refuse_dependants(commit)
        for branch in self.branches(repo):
            if branch.head == cid:
                update_branch(
                    self.objects, repo, branch.name,
                    lambda cur: cur.model_copy(update={"head": commit.parent})
                    if cur is not None and cur.head == cid else None,
                )
        failpoints.hit("delete-commit.after_branches")
        # A commit that landed on it before a branch moved off it (so that branch stayed): the
        # record stays, or that child's parent would dangle. No branch points at it any more,
        # so only an explicit parent can still build on it from here.
        self.refuse_children(commit)
        self.objects.delete(commit_key(repo, cid))
        self.commits.forget()


def delete_commit(commits: Commits, repo: str, ref: str) -> Commit:
    """Delete a commit (id, prefix, or a branch for its head); returns what was deleted.

    An open commit is discarded (1.4-1.7's delete-commit). A finished one must have no child
    and no downstream commit naming it in its provenance (Conflict naming it); branches whose
    head it is move to its parent. Its manifest and blobs are left to garbage-collect.
    """
    commit = resolve(commits, repo, ref)
    deleting = _Deleting(commits)
    if commit.finished is None:
        pending = commits.read_open(repo, commit.id)
        if pending is not None and pending.sealed:  # finishing: land it, then delete it finished
            commit = commits.get_commit(repo, commit.id)
        if commit.finished is None:
            deleting.discard_open(commit)
            return commit
    deleting.delete_finished(commit)
    return commit


def already_open(repo: str, branch: str, cid: str) -> Conflict:
    """The one-line refusal of a second open commit on a branch, naming the open one."""
    return Conflict(
        f"branch '{branch}' in repo '{repo}' already has open commit '{cid}': "
        f"finish it first (herd finish-commit {repo} {branch})"
    )
