"""`herd fsck`: check everything a reader can reach, and say which commits and paths damage hits.

The walk reads, never writes: for every repo (or one), its record, every branch record, every
finished commit reachable from a branch head through parents, the open commit a branch names,
every manifest those commits point at (parsed and hashed against its content address), and
every blob of every file (read in full and hashed, each distinct blob once, a few at a time).
Missing objects count as damage too: a visible record never points at something absent
(design: writes go bottom-up). Unreachable objects are garbage, not damage, and are not read.

A store being written meanwhile may show a head that moved during the walk; what was reached
is still checked. A repo deleted meanwhile can show up as a missing record.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from storage.blobs import BlobStore
from storage.errors import DataCorrupted, InvalidArgument, ObjectNotFound, RepoNotFound
from storage.layout import REPOS_PREFIX, branches_prefix, commit_key, manifest_key, open_key, repo_key, repo_prefix
from storage.model import Branch, Commit, Manifest, Record, Repo, printable, record_kind
from storage.objects import ObjectStore
from storage.ops import OpenCommit
from storage.paths import is_valid_name, validate_name

BLOB_THREADS = 4


@dataclass(frozen=True)
class Damage:
    """One damaged (or missing) object and what it breaks: `repo@commit:/path`, `repo@commit`."""

    what: str  # "blob '<id>'", "manifest '<key>'", "commit record '<key>'", ...
    why: str
    affects: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """One line per thing affected (one line when nothing else is)."""
        head = printable(f"damaged {self.what}: {self.why}")
        return [f"{head}; affects {printable(item)}" for item in self.affects] or [head]


@dataclass
class FsckReport:
    """What was checked and what is damaged."""

    repos: int = 0
    branches: int = 0
    commits: int = 0
    open_commits: int = 0
    manifests: int = 0
    blobs: int = 0
    bytes: int = 0
    damage: list[Damage] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damage

    def affected_commits(self) -> set[str]:
        """`repo@commit` of every commit some damage reaches."""
        return {item.split(":", 1)[0] for d in self.damage for item in d.affects if "@" in item}

    def summary(self) -> str:
        return (
            f"{self.repos} repos, {self.branches} branches, {self.commits} commits, "
            f"{self.open_commits} open commits, {self.manifests} manifests, "
            f"{self.blobs} blobs ({self.bytes} bytes)"
        )


def fsck(objects: ObjectStore, repo: str | None = None, threads: int = BLOB_THREADS) -> FsckReport:
    """Check one repo, or every repo; RepoNotFound when a named repo does not exist."""
    walk = _Walk(objects)
    if repo is not None:
        validate_name(repo, "repo")
        if not objects.exists(repo_key(repo)) and not any(objects.list(repo_prefix(repo))):
            raise RepoNotFound(repo)
        names = [repo]
    else:
        names = [c[:-1] for c in objects.list_children(REPOS_PREFIX) if c.endswith("/") and is_valid_name(c[:-1])]
    for name in names:
        walk.repo(name)
    walk.check_blobs(threads)
    return walk.report


class _Walk:
    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self.blobs = BlobStore(objects)
        self.report = FsckReport()
        self._commits_seen: set[tuple[str, str]] = set()
        # Manifests are not kept (100,000s of files each): only which were read and who uses
        # them; the few holding a damaged blob are read again to name its paths.
        self._manifests: dict[str, bool] = {}  # mid -> parsed and hashed fine
        self._manifest_users: dict[str, list[str]] = defaultdict(list)  # mid -> ["repo@cid"]
        self._manifest_damage: dict[str, tuple[str, str]] = {}  # mid -> (what, why)
        self._digests: set[str] = set()
        self._open_users: dict[str, list[str]] = defaultdict(list)  # digest -> ["repo@id:/p (open commit)"]

    # ---- records -----------------------------------------------------------------------

    def _record(self, key: str, model: type[Record], missing_affects: Iterable[str] = ()) -> Record | None:
        """A parsed record, or None after noting it as damaged (missing only if affects given)."""
        kind = record_kind(model)
        try:
            data = self.objects.get(key)
        except ObjectNotFound:
            affects = tuple(missing_affects)
            if affects:
                self.report.damage.append(Damage(f"{kind} record '{key}'", "missing", affects))
            return None
        try:
            return model.from_bytes(data, key=key)
        except DataCorrupted as exc:
            why = getattr(exc, "why", exc.message)
            self.report.damage.append(Damage(f"{kind} record '{key}'", why, tuple(missing_affects)))
            return None

    def repo(self, name: str) -> None:
        folder = branches_prefix(name)
        branches = [k for k in self.objects.list(folder) if "/" not in k[len(folder):]]
        repo_record = self._record(repo_key(name), Repo, [f"repo '{name}'"] if branches else [])
        if repo_record is None and not branches and not self.objects.exists(repo_key(name)):
            return  # a half-created or half-deleted repo folder: not a repo (as list-repo says)
        self.report.repos += 1
        for key in branches:
            self.branch(name, key)

    def branch(self, repo: str, key: str) -> None:
        self.report.branches += 1
        bname = key.rsplit("/", 1)[1]
        found = self._record(key, Branch)
        if found is None:
            return
        branch: Branch = found  # type: ignore[assignment]
        if branch.head is not None:
            self.history(repo, branch.head, f"branch '{bname}' of repo '{repo}'")
        open_id = getattr(branch, "open_commit", None)
        if open_id:
            self.open_commit(repo, open_id)

    def history(self, repo: str, cid: str, named_by: str) -> None:
        """Every finished commit from `cid` down its parents (each once)."""
        current: str | None = cid
        while current is not None and (repo, current) not in self._commits_seen:
            self._commits_seen.add((repo, current))
            found = self._record(commit_key(repo, current), Commit, [f"{repo}@{current} ({named_by})"])
            if found is None:
                return
            commit: Commit = found  # type: ignore[assignment]
            self.report.commits += 1
            if commit.manifest is not None:
                self.manifest(commit.manifest, f"{repo}@{commit.id}")
            named_by, current = f"parent of {repo}@{commit.id}", commit.parent

    def open_commit(self, repo: str, cid: str) -> None:
        found = self._record(open_key(repo, cid), OpenCommit)
        if found is None:
            return  # gone: a finish that landed, or a claim the next command releases
        pending: OpenCommit = found  # type: ignore[assignment]
        self.report.open_commits += 1
        for op in pending.changes:
            if op.entry is not None:
                for digest in op.entry.chunks:
                    self._digests.add(digest)
                    self._open_users[digest].append(f"{repo}@{cid}:{op.path} (open commit)")
        if pending.commit.parent is not None:
            self.history(repo, pending.commit.parent, f"parent of open commit {repo}@{cid}")

    def manifest(self, mid: str, user: str) -> None:
        self._manifest_users[mid].append(user)
        if mid in self._manifests:
            return
        manifest = self._read_manifest(mid)
        self._manifests[mid] = manifest is not None
        if manifest is None:
            return
        self.report.manifests += 1
        for entry in manifest.files.values():
            self._digests.update(entry.chunks)

    def _read_manifest(self, mid: str) -> Manifest | None:
        key = manifest_key(mid)
        try:
            return Manifest.from_bytes(self.objects.get(key), key=key, expected_id=mid)
        except (ObjectNotFound, DataCorrupted, InvalidArgument) as exc:
            why = "missing" if isinstance(exc, ObjectNotFound) else getattr(exc, "why", exc.message)
            self._manifest_damage[mid] = (f"manifest '{key}'", why)
            return None

    # ---- blobs and the damage they cause -----------------------------------------------

    def check_blobs(self, threads: int) -> None:
        for mid, (what, why) in sorted(self._manifest_damage.items()):
            self.report.damage.append(Damage(what, why, tuple(self._manifest_users[mid])))
        digests = sorted(self._digests)
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            outcomes = list(pool.map(self._check_blob, digests))
        damaged: dict[str, str] = {}
        for digest, (size, problem) in zip(digests, outcomes, strict=True):
            if problem is None:
                self.report.blobs += 1
                self.report.bytes += size
            else:
                damaged[digest] = problem
        affects = self._blob_affects(set(damaged))
        for digest, why in damaged.items():
            self.report.damage.append(Damage(f"blob '{digest}'", why, tuple(dict.fromkeys(affects[digest]))))

    def _check_blob(self, digest: str) -> tuple[int, str | None]:
        try:
            return self.blobs.verify(digest), None
        except ObjectNotFound:
            return 0, "missing"
        except DataCorrupted as exc:
            return 0, getattr(exc, "why", exc.message)
        except InvalidArgument as exc:  # a manifest naming something that is no blob id
            return 0, exc.message

    def _blob_affects(self, damaged: set[str]) -> dict[str, list[str]]:
        """`repo@commit:/path` of every commit (and open commit) holding each damaged blob."""
        affects: dict[str, list[str]] = {digest: [] for digest in damaged}
        if not damaged:
            return affects
        for mid, good in sorted(self._manifests.items()):
            manifest = self._read_manifest(mid) if good else None
            if manifest is None:
                continue
            for path, entry in sorted(manifest.files.items()):
                for digest in set(entry.chunks) & damaged:
                    affects[digest] += [f"{commit}:{path}" for commit in self._manifest_users[mid]]
        for digest in damaged:
            affects[digest] += self._open_users.get(digest, [])
        return affects
