"""The porcelain the CLI and the scheduler use: `Pfs(objects)`, Pachyderm 1.x semantics.

Repos and branches live here; commit mechanics are in `storage/commits.py`, file operations
in `storage/files.py`. Every method checks all of its input before its first write, so a
refused call changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from storage import failpoints
from storage.branches import update_branch
from storage.commits import HEAD, Commits, Parent, delete_commit, now
from storage.errors import (
    AlreadyExists,
    BranchNotFound,
    CommitFinished,
    Conflict,
    InvalidArgument,
    RepoNotFound,
)
from storage.files import Files, Source
from storage.layout import (
    REPOS_PREFIX,
    branch_key,
    branches_prefix,
    commits_prefix,
    open_key,
    open_prefix,
    repo_key,
    repo_prefix,
)
from storage.model import (
    Branch,
    BranchRef,
    Commit,
    CommitRef,
    FileDiff,
    FileInfo,
    Manifest,
    Repo,
    RepoInfo,
)
from storage.objects import ObjectStore
from storage.paths import (
    ROOT,
    is_valid_name,
    validate_name,
)
from storage.refnames import is_full_id, resolve, write_target
from storage.trees import check_manifest

if TYPE_CHECKING:
    from _typeshed import SupportsWrite  # a stream destination only needs write(bytes)

__all__ = ["HEAD", "Pfs"]


class Pfs:
    """Versioned data over one ObjectStore: repos, branches, commits and files."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self.commits = Commits(objects)
        self.files = Files(self.commits)

    # ---- repos ---------------------------------------------------------------------------

    def create_repo(self, name: str, description: str = "") -> Repo:
        """Create a repo; AlreadyExists when the name is taken.

        Records left under the name by an interrupted delete-repo (which removes `repo.json`
        first) are removed before the new repo appears, so it never inherits old branches.
        """
        validate_name(name, "repo")
        if self.objects.exists(repo_key(name)):
            raise AlreadyExists(f"repo '{name}' already exists")
        self._purge(name)
        repo = Repo(name=name, description=description, created=now())
        if not self.objects.put_if_absent(repo_key(name), repo.canonical_bytes()):
            raise AlreadyExists(f"repo '{name}' already exists")
        return repo

    def inspect_repo(self, name: str) -> RepoInfo:
        """A repo with its size and branch names."""
        repo = self.commits.require_repo(name)
        branches = self._branches(name)
        return RepoInfo(
            name=repo.name, description=repo.description, created=repo.created,
            size=self._size(name, branches), branches=tuple(b.name for b in branches),
        )

    def list_repos(self) -> list[RepoInfo]:
        """Every repo, by name, with sizes."""
        infos = []
        for child in self.objects.list_children(REPOS_PREFIX):
            if not child.endswith("/"):
                continue
            try:
                infos.append(self.inspect_repo(child[:-1]))
            except RepoNotFound:
                continue  # a repo being deleted (or a half-created one): not a repo
        return infos

    def _size(self, repo: str, branches: Sequence[Branch]) -> int:
        """pachctl's repo size: the logical size of master's head (the SIZE list-commit shows for
        it), 0 when the repo has no master or master no commit. Other branches do not count."""
        head = next((b.head for b in branches if b.name == "master" and b.head), None)
        return 0 if head is None else self.commits.finished_commit(repo, head).size

    def delete_repo(self, name: str, force: bool = False) -> None:
        """Delete a repo's records (blobs stay: they are shared); commits need force."""
        self.commits.require_repo(name)
        has_commits = any(b.head or b.open_commit for b in self._branches(name))
        if has_commits and not force:
            raise Conflict(f"repo '{name}' has commits; use --force to delete it anyway")
        # repo.json first: that one delete is the whole deletion for every reader (the repo is
        # gone at once, never half there). What a crash leaves below is unreachable, and the
        # next create-repo of the name (or garbage collection) removes it.
        self.objects.delete(repo_key(name))
        failpoints.hit("delete-repo.after_repo_record")
        self._purge(name)
        self.commits.forget()

    def _purge(self, name: str) -> None:
        """Delete every record under `repos/<name>/` but repo.json: heads first, then history."""
        for kind, folder in (("branches", branches_prefix(name)), ("open", open_prefix(name)),
                             ("commits", commits_prefix(name))):
            for key in list(self.objects.list(folder)):
                self.objects.delete(key)
            failpoints.hit(f"delete-repo.after_{kind}")
        for key in list(self.objects.list(repo_prefix(name))):
            if key != repo_key(name):
                self.objects.delete(key)

    # ---- branches ------------------------------------------------------------------------

    def create_branch(
        self, repo: str, name: str, head: str | None = None, provenance: Sequence[BranchRef] = ()
    ) -> Branch:
        """Create a branch, or move an existing one to `head` / set its provenance.

        `head` may be an open commit (1.4's SetBranch): the branch then shares it as its open
        commit and moves onto it when it is finished (Commits.set_to_open)."""
        self.commits.require_repo(repo)
        validate_name(name, "branch")
        self.commits.settle_branch(repo, name)
        for ref in provenance:
            self.commits.require_repo(ref.repo)
            validate_name(ref.name, "branch")
            if (ref.repo, ref.name) == (repo, name):
                raise InvalidArgument(f"branch '{repo}/{name}' cannot be its own provenance")
        target = resolve(self.commits, repo, head) if head is not None else None
        if target is not None and target.finished is None:
            try:
                return self.commits.set_to_open(repo, name, target.id, provenance)
            except CommitFinished:  # finishing meanwhile: land it and point at it finished
                target = self.commits.get_commit(repo, target.id)

        def update(current: Branch | None) -> Branch:
            base = current or Branch(repo=repo, name=name)
            fields: dict[str, object] = {"provenance": tuple(provenance)}
            if target is not None:
                fields["head"] = target.id
            return base.model_copy(update=fields)

        stored = update_branch(self.objects, repo, name, update)
        assert stored is not None
        return stored

    def set_branch(self, repo: str, commit: str, name: str) -> Branch:
        """pachctl 1.4's `set-branch R COMMIT BRANCH`: create-branch with --head, open allowed."""
        return self.create_branch(repo, name, head=commit)

    def list_branches(self, repo: str) -> list[Branch]:
        """The branches of a repo, by name (crashed finishes on them landed first)."""
        self.commits.require_repo(repo)
        return self._branches(repo)

    def _branches(self, repo: str) -> list[Branch]:
        """list_branches of a repo already known to exist (its record read: no second GET)."""
        found = []
        for child in self.objects.list_children(branches_prefix(repo)):
            if child.endswith("/") or not is_valid_name(child):
                continue  # not a branch any command could name
            branch = self.commits.settle_branch(repo, child)
            if branch is not None:
                found.append(branch)
        return found

    def inspect_branch(self, repo: str, name: str) -> Branch:
        """One branch; BranchNotFound when missing."""
        self.commits.require_repo(repo)
        branch = self.commits.settle_branch(repo, validate_name(name, "branch"))
        if branch is None:
            raise BranchNotFound(repo, name)
        return branch

    def delete_branch(self, repo: str, name: str, force: bool = False) -> None:
        """Delete a branch (its commits stay reachable by id); an open commit on it needs force."""
        branch = self.inspect_branch(repo, name)
        if branch.open_commit is not None and not force:
            raise Conflict(
                f"branch '{name}' in repo '{repo}' has open commit '{branch.open_commit}'; "
                "finish it or use --force"
            )
        # The branch first: with it gone the open record is unclaimed, so invisible even if a
        # crash keeps it (get_commit treats an unclaimed record as not there).
        self.objects.delete(branch_key(repo, name))
        failpoints.hit("delete-branch.after_branch")
        if branch.open_commit is not None:
            pending = self.commits.read_open(repo, branch.open_commit)
            if pending is not None and (pending.commit.branch or "master") == name:
                # Its own open commit; one it was only set to stays its owner's.
                self.objects.delete(open_key(repo, branch.open_commit))

    # ---- commits -------------------------------------------------------------------------

    def start_commit(
        self,
        repo: str,
        branch: str = "master",
        parent: str | None = None,
        description: str = "",
        provenance: Sequence[CommitRef] = (),
    ) -> Commit:
        """Open a commit on `branch` (created if missing); readers see it only once finished."""
        return self.commits.start(repo, branch, parent, description, provenance)

    def finish_commit(
        self,
        repo: str,
        commit: str,
        description: str | None = None,
        failed_reason: str | None = None,
    ) -> Commit:
        """Finish an open commit (id, prefix, or a branch with one open) onto its branch head."""
        self.commits.require_repo(repo)
        return self.commits.finish(repo, self._open_id(repo, commit), description, failed_reason)

    def _open_id(self, repo: str, ref: str) -> str:
        target = write_target(self.commits, repo, ref)
        if target.kind == "open":
            return target.name
        self.inspect_branch(repo, target.name)
        raise InvalidArgument(f"branch '{ref}' in repo '{repo}' has no open commit to finish")

    def write_commit(
        self,
        repo: str,
        branch: str,
        manifest: Manifest,
        provenance: Sequence[CommitRef] = (),
        description: str = "",
        failed_reason: str | None = None,
        parent: Parent = HEAD,
        commit_id: str | None = None,
    ) -> Commit:
        """A finished commit with `manifest` in one step (pipeline outputs); creates the branch.

        A given `commit_id` makes the call idempotent (see Commits.commit_on_branch)."""
        self.commits.require_repo(repo)
        validate_name(branch, "branch")
        for ref in provenance:
            validate_name(ref.repo, "repo")
        if commit_id is not None and not is_full_id(commit_id):
            raise InvalidArgument(f"invalid commit id '{commit_id}': expected 32 lowercase hex digits")
        if parent is not HEAD and parent is not None:
            parent = resolve(self.commits, repo, parent).id

        def build(base: Manifest) -> Manifest:
            check_manifest(manifest, base)
            return manifest

        return self.commits.commit_on_branch(
            repo, branch, build, description=description,
            provenance=provenance, failed_reason=failed_reason, parent=parent, commit_id=commit_id,
        )

    def delete_commit(self, repo: str, ref: str) -> Commit:
        """Delete a commit: an open one is discarded; a finished one needs no child and no
        downstream commit, and branches whose head it is move to its parent."""
        return delete_commit(self.commits, repo, ref)

    def inspect_commit(self, repo: str, ref: str) -> Commit:
        """The commit a ref names: a branch, an id, a unique id prefix, with `^`, `^N`, `~N` or `.N`
        (open commits show finished=None)."""
        return resolve(self.commits, repo, ref)

    def read_manifest(self, commit: Commit) -> Manifest:
        """The manifest of a finished commit."""
        return self.commits.read_manifest(commit)

    def read_tree(self, commit: Commit) -> Manifest:
        """A commit's files: a finished one's manifest, an open one's as if finished now."""
        return self.commits.view_manifest(commit)

    def list_commits(
        self, repo: str, branch: str | None = None, limit: int | None = None,
        since: str | None = None,
    ) -> list[Commit]:
        """Newest first: open commits, then history by parent pointers from the head(s).

        `since` (pachctl's `--from`): only the commits after that one, which is not listed."""
        stop = resolve(self.commits, repo, since).id if since is not None else None
        if branch is None:
            heads = [b.head for b in self.list_branches(repo) if b.head]
        else:
            heads = [h for h in [self.inspect_branch(repo, branch).head] if h]
        # list_branches / inspect_branch landed any crashed finish, so heads and the open
        # commits below agree: a commit is listed open or finished, never both.
        cap = limit if branch is not None else None  # one linear history: stop early
        walked: dict[str, Commit] = {}
        for head in heads:
            for commit in self.commits.history(self.commits.finished_commit(repo, head)):
                if commit.id in walked or commit.id == stop or (cap is not None and len(walked) >= cap):
                    break
                walked[commit.id] = commit
        history = list(walked.values())
        if branch is None:
            history.sort(key=lambda c: (c.finished or c.started, c.started), reverse=True)
        opened = [c for c in self.commits.open_commits(repo, branch)
                  if c.id not in walked and c.id != stop]
        result = opened + history
        return result if limit is None else result[:limit]

    def commits_after(self, repo: str, branch: str, seen: str | None) -> tuple[str | None, list[Commit]]:
        """The branch's head and its finished commits after `seen`, oldest first (subscribe-commit).

        `seen=None` means from the first commit. When `seen` is no longer in the branch's
        history (the branch was moved back or elsewhere) only the new head is new: the commits
        it shares with what was printed before cannot be told apart cheaply, so none are repeated.
        """
        self.commits.require_repo(repo)
        current = self.commits.settle_branch(repo, validate_name(branch, "branch"))
        head = current.head if current else None
        if head is None or head == seen:
            return head, []
        walked: list[Commit] = []
        for commit in self.commits.history(self.commits.finished_commit(repo, head)):
            if commit.id == seen:
                return head, walked[::-1]
            walked.append(commit)
        return head, walked[::-1] if seen is None else walked[:1]

    # ---- files ---------------------------------------------------------------------------

    def put_file(
        self, repo: str, ref: str, path: str, source: Source, append: bool = False
    ) -> Commit:
        """Put (or append to) one file; returns the open commit it joined or its own commit."""
        return self.files.put_files(repo, ref, [(path, source)], append)

    def put_files(
        self, repo: str, ref: str, items: Iterable[tuple[str, Source]], append: bool = False
    ) -> Commit:
        """Put many files in one commit (`put-file -r`): parallel uploads, one manifest."""
        return self.files.put_files(repo, ref, items, append)

    def copy_file(
        self, src_repo: str, src_ref: str, src_path: str,
        dst_repo: str, dst_ref: str, dst_path: str, overwrite: bool = False,
    ) -> Commit:
        """Copy a file or directory (no bytes move: entries share blobs), as pachctl copy-file."""
        return self.files.copy_file(src_repo, src_ref, src_path, dst_repo, dst_ref, dst_path, overwrite)

    def delete_file(self, repo: str, ref: str, path: str) -> Commit:
        """Delete a file or directory, in the open commit or as a commit by itself."""
        return self.files.delete_file(repo, ref, path)

    def open_file(self, repo: str, ref: str, path: str) -> BinaryIO:
        """A streaming reader over a file of a finished commit."""
        return self.files.open_file(repo, ref, path)

    def get_file(
        self, repo: str, ref: str, path: str, dest: Path | SupportsWrite[bytes], recursive: bool = False,
        progress: Callable[[int], object] | None = None,
    ) -> None:
        """Copy a file (or, recursive, a directory) to a local path or stream, verified;
        `progress` is called with each block's size."""
        self.files.get_file(repo, ref, path, dest, recursive, progress)

    def list_file(self, repo: str, ref: str, path: str = ROOT) -> list[FileInfo]:
        """The entries directly below `path` (files and implicit dirs), or the file itself."""
        return self.files.list_file(repo, ref, path)

    def inspect_file(self, repo: str, ref: str, path: str) -> FileInfo:
        """FileInfo of a file or directory."""
        return self.files.inspect_file(repo, ref, path)

    def diff_file(
        self, repo: str, ref: str, old_ref: str | None = None, path: str = ROOT
    ) -> FileDiff:
        """Added, modified and deleted files since `old_ref` (default: the parent)."""
        return self.files.diff_file(repo, ref, old_ref, path)
