"""`herd fsck`: check everything a reader can reach, and say which commits and paths damage hits.

The walk reads, never writes: for every repo (or one), its record, every branch record, every
finished commit reachable from a branch head through parents, the open commit a branch names,
every manifest those commits point at (parsed and hashed against its content address), and
every chunk of every file, each distinct one once, a few at a time: a loose blob read in full
and hashed, a packed chunk as its slice of its pack (each pack read once, whole, and every
referenced slice hashed against its chunk id; bytes of a pack no entry references are not
damage). A file entry whose pack slices do not match its chunks is damage of its record.
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

from storage.blobs import PACKED_CHUNK_MAX, BlobStore, slice_problem
from storage.errors import DataCorrupted, InvalidArgument, ObjectNotFound, RepoNotFound
from storage.layout import (
    REPOS_PREFIX,
    branches_prefix,
    commit_key,
    manifest_key,
    open_key,
    pack_key,
    repo_key,
    repo_prefix,
)
from storage.model import (
    MAX_LAYERS,
    Branch,
    Commit,
    FileEntry,
    Manifest,
    ManifestLayer,
    PackSlice,
    Record,
    Repo,
    record_kind,
    stored_manifest,
)
from storage.objects import ObjectStore
from storage.ops import OpenCommit
from storage.paths import is_valid_name, printable, validate_name

BLOB_THREADS = 4

# A chunk as a manifest references it: its id, and where it lies in a pack (None: a loose blob).
ChunkRef = tuple[str, PackSlice | None]
# What checking one chunk found: its size when good, else why not.
Outcome = tuple[ChunkRef, int, str | None]


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
    packs: int = 0
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
            f"{self.blobs} blobs ({self.bytes} bytes), {self.packs} packs"
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
        self._refs: set[ChunkRef] = set()
        self._open_users: dict[ChunkRef, list[str]] = defaultdict(list)  # ref -> ["repo@id:/p (open commit)"]
        # Entries whose pack slices do not match their chunks: (record what, why, affects); the
        # affects of a manifest's entry are its commits (filled in as more name it) and the path.
        self._entry_damage: list[tuple[str, str, list[str], str | None]] = []

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
        key = open_key(repo, cid)
        for op in pending.changes:
            if op.entry is None:
                continue
            user = f"{repo}@{cid}:{op.path} (open commit)"
            refs = self._entry_refs(op.entry, f"open commit record '{key}'", op.path, [user], below=False)
            for ref in refs:
                self._refs.add(ref)
                self._open_users[ref].append(user)
        if pending.commit.parent is not None:
            self.history(repo, pending.commit.parent, f"parent of open commit {repo}@{cid}")

    def manifest(self, mid: str, user: str) -> None:
        """A commit's manifest and, for a layer, the manifests below it (their files are the
        commit's too), each once; a chain whose depths do not fall is damage."""
        deepest = MAX_LAYERS  # the most layers the next one down may have: readers refuse more
        current: str | None = mid
        while current is not None:
            self._manifest_users[current].append(user)
            if current in self._manifests:
                return
            manifest = self._read_manifest(current)
            self._manifests[current] = manifest is not None
            if manifest is None:
                return
            self.report.manifests += 1
            what = f"manifest '{manifest_key(current)}'"
            for path, entry in manifest.files.items():
                self._refs.update(self._entry_refs(entry, what, path, self._manifest_users[current], below=True))
            if not isinstance(manifest, ManifestLayer):
                return
            if manifest.depth > deepest:
                self._manifest_damage[current] = (what, f"a layer {manifest.depth} deep below one that allows {deepest}")
                self._manifests[current] = False
                return
            deepest, current = manifest.depth - 1, manifest.base

    def _entry_refs(self, entry: FileEntry, what: str, path: str, users: list[str], below: bool) -> list[ChunkRef]:
        """An entry's chunk refs; none, and damage of its record, when its slices are inconsistent
        (`users`: who it affects; `below`: they are commits, the path goes after each)."""
        try:
            return entry.slices()
        except DataCorrupted:
            why = f"file entry '{path}' places {len(entry.packed)} chunks in packs but has {len(entry.chunks)}"
            self._entry_damage.append((what, why, users, path if below else None))
            return []

    def _read_manifest(self, mid: str) -> Manifest | ManifestLayer | None:
        key = manifest_key(mid)
        try:
            return stored_manifest(self.objects.get(key), key, mid)
        except (ObjectNotFound, DataCorrupted, InvalidArgument) as exc:
            why = "missing" if isinstance(exc, ObjectNotFound) else getattr(exc, "why", exc.message)
            self._manifest_damage[mid] = (f"manifest '{key}'", why)
            return None

    # ---- blobs and the damage they cause -----------------------------------------------

    def check_blobs(self, threads: int) -> None:
        for mid, (what, why) in sorted(self._manifest_damage.items()):
            self.report.damage.append(Damage(what, why, tuple(self._manifest_users[mid])))
        for what, why, users, path in self._entry_damage:
            named = users if path is None else [f"{user}:{path}" for user in users]
            self.report.damage.append(Damage(what, why, tuple(dict.fromkeys(named))))
        loose = sorted(digest for digest, where in self._refs if where is None)
        by_pack: dict[str, list[tuple[str, PackSlice]]] = defaultdict(list)
        for digest, where in self._refs:
            if where is not None:
                by_pack[where[0]].append((digest, where))
        outcomes: list[Outcome] = []
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            # Packs first: the few big reads start while the many small blob reads queue.
            packs = [pool.submit(self._check_pack, pack, sorted(by_pack[pack])) for pack in sorted(by_pack)]
            for digest, (size, problem) in zip(loose, pool.map(self._check_blob, loose), strict=True):
                outcomes.append(((digest, None), size, problem))
            for future in packs:
                read, found = future.result()
                self.report.packs += read
                outcomes.extend(found)
        damaged: dict[ChunkRef, str] = {}
        for ref, size, problem in sorted(outcomes, key=lambda o: _order(o[0])):
            if problem is None:
                self.report.blobs += 1
                self.report.bytes += size
            else:
                damaged[ref] = problem
        holders = self._blob_affects(set(damaged))
        for ref, why in damaged.items():
            digest, where = ref
            what = f"blob '{digest}'" if where is None else f"blob '{digest}' in pack '{where[0]}'"
            self.report.damage.append(Damage(what, why, tuple(dict.fromkeys(holders[ref]))))

    def _check_blob(self, digest: str) -> tuple[int, str | None]:
        try:
            return self.blobs.verify(digest), None
        except ObjectNotFound:
            return 0, "missing"
        except DataCorrupted as exc:
            return 0, getattr(exc, "why", exc.message)
        except InvalidArgument as exc:  # a manifest naming something that is no blob id
            return 0, exc.message

    def _check_pack(self, pack: str, slices: list[tuple[str, PackSlice]]) -> tuple[int, list[Outcome]]:
        """Read a pack once and check every referenced slice of it from memory; (1 if read, outcomes)."""
        try:
            data = self.objects.get(pack_key(pack))
        except ObjectNotFound:
            return 0, [((digest, where), 0, f"missing (pack '{pack}')") for digest, where in slices]
        except InvalidArgument as exc:  # only a crafted record: pack ids are checked when parsed
            return 0, [((digest, where), 0, exc.message) for digest, where in slices]
        view = memoryview(data)
        outcomes: list[Outcome] = []
        for digest, where in slices:
            size, problem = _check_slice(view, digest, where)
            outcomes.append(((digest, where), size, problem))
        return 1, outcomes

    def _blob_affects(self, damaged: set[ChunkRef]) -> dict[ChunkRef, list[str]]:
        """`repo@commit:/path` of every commit (and open commit) holding each damaged chunk."""
        affects: dict[ChunkRef, list[str]] = {ref: [] for ref in damaged}
        if not damaged:
            return affects
        for mid, good in sorted(self._manifests.items()):
            manifest = self._read_manifest(mid) if good else None
            if manifest is None:
                continue
            for path, entry in sorted(manifest.files.items()):
                try:
                    refs = set(entry.slices())
                except DataCorrupted:
                    continue  # reported as damage of the manifest
                for ref in refs & damaged:
                    affects[ref] += [f"{commit}:{path}" for commit in self._manifest_users[mid]]
        for ref in damaged:
            affects[ref] += self._open_users.get(ref, [])
        return affects


def _check_slice(pack: memoryview, digest: str, where: PackSlice) -> tuple[int, str | None]:
    """(size, None) when the slice holds the chunk, else (0, why): what BlobStore.read_slice checks."""
    _, offset, length = where
    data = b"" if length > PACKED_CHUNK_MAX else bytes(pack[offset:offset + length])
    problem = slice_problem(digest, where, data)
    return (0, problem) if problem is not None else (length, None)


def _order(ref: ChunkRef) -> tuple[str, str, int, int]:
    digest, where = ref
    return (digest, "", -1, -1) if where is None else (digest, *where)
