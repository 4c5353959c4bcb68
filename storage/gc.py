"""Garbage collection: delete what no commit, open commit or in-flight job can reach.

Roots are every commit record of every repo (history is kept, so every finished commit is a
root, whether or not a branch still points at it), every open commit's recorded file ops (an
open record no branch claims is an abandoned start or finish: it is garbage itself), and
the extra roots a caller passes in (the scheduler's job plans, datum results and indexes:
storage does not know them). From the roots: manifests, then the chunks they list: a loose
chunk keeps its blob, a packed one keeps its whole pack (a pack is freed only when no chunk of
it is reachable; its live chunks are never copied out).
Garbage is whatever lies under `blobs/`, `packs/`, `manifests/`, `tmp/` (temp keys of big
uploads) and `repos/<deleted repo>/` that the roots do not reach, plus temp files and multipart
uploads killed writers left behind. A file entry whose pack slices do not match its chunks
stops the run like an unreadable record: it may hold roots nobody can read.

Safe against writers running at the same time, without a lock they would have to take:
- the mark: a GC first writes `_herd/gc/<id>`; its write time on the store's own clock is the
  GC's start, so no clock of this machine is trusted. Nothing written after `start - grace`
  is deleted, so whatever a writer uploads while a GC runs stays;
- a second look: just before deleting, and at least `settle` seconds after the mark, the roots
  written since the mark (new commits, open commits that gained ops, new datum results) are
  read again and what they reach is kept, so an upload finished just before the mark and
  recorded within that time stays too;
- the grace period (default one hour) covers writers whose upload and record are further
  apart than that (a long `put-file -r` records all its files at the end); `--grace 0` trusts
  the mark and the second look alone.
The one case none of these sees: a writer that finds an unreachable blob older than the grace
already stored (content addressing skips the upload) while a GC is deleting it (packs are
named by their own bytes: the same case, for an identical batch). Closing it needs the
writer's help (refresh the blob's time when it reuses it), not the GC's.
A local file moved into place keeps its old mtime, so the local store reports max(mtime, ctime).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from pydantic import ValidationError

from storage.branches import read_branch
from storage.errors import DataCorrupted, InvalidArgument, ObjectNotFound, StorageUnavailable
from storage.layout import (
    BLOB_PREFIX,
    GC_MARK_PREFIX,
    MANIFEST_PREFIX,
    PACK_PREFIX,
    REPOS_PREFIX,
    TEMP_PREFIX,
    blob_id_of,
    commits_prefix,
    gc_mark_key,
    manifest_id_of,
    manifest_key,
    open_prefix,
    pack_id_of,
    repo_key,
    repo_of,
    repo_prefix,
)
from storage.model import Commit, FileEntry, Manifest, ManifestLayer, manifest_record
from storage.objects import IncompleteUpload, ObjectInfo, ObjectStore
from storage.ops import OpenCommit

DEFAULT_GRACE = timedelta(hours=1)
# Seconds between the mark and the second look: a writer whose upload finished just before the
# mark and whose commit records it within this long keeps its blobs even with no grace.
SETTLE_SECONDS = 2.0


@dataclass
class Roots:
    """What must stay: manifest ids, loose blob ids and pack ids (SHA-256 hex)."""

    manifests: set[str] = field(default_factory=set)
    blobs: set[str] = field(default_factory=set)
    packs: set[str] = field(default_factory=set)

    def add_entries(self, entries: Iterable[FileEntry], where: str = "a record") -> None:
        """Keep each entry's chunks: a loose one's blob, a packed one's pack. `where` names the
        record holding them for the message when an entry's slices do not match its chunks."""
        for entry in entries:
            if not entry.packed:
                self.blobs.update(entry.chunks)
                continue
            try:
                parts = entry.slices()
            except DataCorrupted:
                raise DataCorrupted(
                    f"garbage-collect stopped, nothing deleted: {where} does not parse (a file "
                    f"entry places {len(entry.packed)} chunks in packs but has {len(entry.chunks)}); "
                    f"run 'herd fsck'"
                ) from None
            for digest, placed in parts:
                if placed is None:
                    self.blobs.add(digest)
                else:
                    self.packs.add(placed[0])

    def update(self, other: Roots) -> None:
        self.manifests |= other.manifests
        self.blobs |= other.blobs
        self.packs |= other.packs


# Extra roots from outside storage; `since` None = all of them, else only records written since.
RootSource = Callable[[datetime | None], Roots]


@dataclass
class Freed:
    count: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.count += 1
        self.bytes += size


KINDS = (
    "blobs", "packs", "manifests", "abandoned open commits", "deleted-repo records", "temp objects",
    "incomplete uploads",
)


@dataclass
class GcReport:
    """What one run freed, by kind, and what it kept."""

    started: datetime
    cutoff: datetime
    freed: dict[str, Freed] = field(default_factory=lambda: {kind: Freed() for kind in KINDS})
    kept_blobs: int = 0
    kept_packs: int = 0
    kept_manifests: int = 0
    dry_run: bool = False

    @property
    def total(self) -> Freed:
        return Freed(sum(f.count for f in self.freed.values()), sum(f.bytes for f in self.freed.values()))


@dataclass(frozen=True)
class Garbage:
    """One key to delete and why (its kind in the report)."""

    kind: str
    key: str
    size: int


# ---- pure: what is garbage, given listings and roots -----------------------------------------

_DURATION_RE = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>[smhd]?)")
_UNIT_SECONDS = {"s": 1, "m": 60, "": 60, "h": 3600, "d": 86400}


def parse_grace(text: str) -> timedelta:
    """`90s`, `30m`, `1h`, `2d`, or a bare number of minutes (`0` = trust the mark alone)."""
    match = _DURATION_RE.fullmatch(text.strip())
    if match is None:
        raise InvalidArgument(f"invalid grace '{text}': expected a number of minutes or e.g. 90s, 30m, 1h, 2d")
    seconds = float(match["number"]) * _UNIT_SECONDS[match["unit"]]
    if seconds > 366 * 86400:
        raise InvalidArgument(f"invalid grace '{text}': at most a year")
    return timedelta(seconds=seconds)



def find_garbage(
    infos: Iterable[ObjectInfo], roots: Roots, dead_repos: set[str], cutoff: datetime
) -> Iterator[Garbage]:
    """Keys written before `cutoff` that nothing reaches: unreachable blobs, packs and manifests,
    temp keys, and every key of a repo whose repo.json is gone. Other keys are never garbage."""
    for info in infos:
        if info.modified >= cutoff:
            continue
        key = info.key
        if key.startswith(BLOB_PREFIX):
            digest = blob_id_of(key)
            if digest is not None and digest not in roots.blobs:
                yield Garbage("blobs", key, info.size)
        elif key.startswith(PACK_PREFIX):
            pack = pack_id_of(key)
            if pack is not None and pack not in roots.packs:
                yield Garbage("packs", key, info.size)
        elif key.startswith(MANIFEST_PREFIX):
            if manifest_id_of(key) not in roots.manifests:
                yield Garbage("manifests", key, info.size)
        elif key.startswith(TEMP_PREFIX):
            yield Garbage("temp objects", key, info.size)
        elif key.startswith(REPOS_PREFIX) and repo_of(key) in dead_repos:
            yield Garbage("deleted-repo records", key, info.size)


# ---- I/O: reading roots -------------------------------------------------------------------------


def _parse(objects: ObjectStore, key: str, parse: Callable[[bytes], object]) -> object | None:
    """A record, or None when it vanished; an unreadable record stops the GC (it may hold roots)."""
    try:
        return parse(objects.get(key))
    except ObjectNotFound:
        return None
    except (DataCorrupted, ValidationError, ValueError) as exc:
        why = getattr(exc, "why", None) or type(exc).__name__
        raise DataCorrupted(
            f"garbage-collect stopped, nothing deleted: record '{key}' in {objects.url} does not "
            f"parse ({why}); run 'herd fsck'"
        ) from None


def repo_names(objects: ObjectStore) -> tuple[set[str], set[str]]:
    """(live repos, deleted repos): a folder under repos/ without repo.json is a deleted repo."""
    live: set[str] = set()
    dead: set[str] = set()
    for child in objects.list_children(REPOS_PREFIX):
        if child.endswith("/"):
            name = child[:-1]
            (live if objects.exists(repo_key(name)) else dead).add(name)
    return live, dead


def _claimed(objects: ObjectStore, pending: OpenCommit) -> bool:
    """Whether the open record's branch still claims it (only then is it an open commit)."""
    branch = read_branch(objects, pending.commit.repo, pending.commit.branch or "master")
    return branch is not None and getattr(branch, "open_commit", pending.commit.id) == pending.commit.id


def scan_roots(
    objects: ObjectStore, repos: Iterable[str], cutoff: datetime, since: datetime | None = None
) -> tuple[Roots, list[ObjectInfo]]:
    """Manifest and blob ids held by the repos' commit records and open commits, and the open
    records no branch claims that were written before `cutoff` (a start-commit killed before its
    claim, a finish killed before removing its landed record): those hold nothing.

    With `since`, only records written at or after it (the second look)."""
    roots, orphans = Roots(), []
    for repo in sorted(repos):
        for kind, folder in (("commits", commits_prefix(repo)), ("open", open_prefix(repo))):
            for info in objects.list_with_times(folder):
                if since is not None and info.modified < since:
                    continue
                if kind == "commits":
                    commit = _parse(objects, info.key, Commit.from_bytes)
                    if isinstance(commit, Commit) and commit.manifest:
                        roots.manifests.add(commit.manifest)
                    continue
                pending = _parse(objects, info.key, OpenCommit.from_bytes)
                if not isinstance(pending, OpenCommit):
                    continue
                if info.modified < cutoff and not _claimed(objects, pending):
                    orphans.append(info)
                else:
                    _add_ops(roots, pending, info.key)
    return roots, orphans


def _add_ops(roots: Roots, pending: OpenCommit, key: str) -> None:
    roots.add_entries((op.entry for op in pending.changes if op.entry is not None), f"record '{key}'")


def still_orphans(objects: ObjectStore, orphans: list[ObjectInfo], roots: Roots) -> list[ObjectInfo]:
    """The second look at unclaimed open records: one claimed or changed since is kept."""
    gone = []
    for info in orphans:
        now = next(iter(objects.list_with_times(info.key)), None)
        if now is None or now.key != info.key:
            continue  # removed meanwhile (landed, or repaired by a command)
        pending = _parse(objects, info.key, OpenCommit.from_bytes)
        if not isinstance(pending, OpenCommit):
            continue
        if now.modified != info.modified or _claimed(objects, pending):
            _add_ops(roots, pending, info.key)
        else:
            gone.append(now)
    return gone


def expand_manifests(objects: ObjectStore, roots: Roots, done: set[str]) -> None:
    """Add the blobs of every root manifest not in `done`, and the manifest a layer is built
    on, and so on down (a missing manifest is fsck's business)."""
    while todo := sorted(roots.manifests - done):
        for mid in todo:
            done.add(mid)
            key = manifest_key(mid)
            manifest = _parse(objects, key, lambda data: manifest_record(data, key))  # noqa: B023 - called at once
            if isinstance(manifest, (Manifest, ManifestLayer)):
                roots.add_entries(manifest.files.values(), f"record '{key}' in {objects.url}")
            if isinstance(manifest, ManifestLayer):
                roots.manifests.add(manifest.base)


# ---- the run ----------------------------------------------------------------------------------


def write_mark(objects: ObjectStore) -> tuple[str, datetime]:
    """Write this run's mark; its time on the store's clock is the run's start."""
    key = gc_mark_key(uuid.uuid4().hex)
    objects.put(key, json.dumps({"started": datetime.now(timezone.utc).isoformat()}).encode())
    for info in objects.list_with_times(key):
        if info.key == key:
            return key, info.modified
    raise StorageUnavailable(f"garbage-collect mark '{key}' vanished from {objects.url} as it was written")


def collect_garbage(
    objects: ObjectStore,
    grace: timedelta = DEFAULT_GRACE,
    extra_roots: RootSource | None = None,
    dry_run: bool = False,
    settle: float = SETTLE_SECONDS,
) -> GcReport:
    """Delete what nothing reaches and nothing wrote after `mark - grace`; report what was freed."""
    mark, started = write_mark(objects)
    marked = time.monotonic()
    cutoff = started - grace
    report = GcReport(started=started, cutoff=cutoff, dry_run=dry_run)
    try:
        live, dead = repo_names(objects)
        roots, orphans = scan_roots(objects, live, cutoff)
        if extra_roots is not None:
            roots.update(extra_roots(None))
        expanded: set[str] = set()
        expand_manifests(objects, roots, expanded)
        candidates = _candidates(objects, roots, dead, cutoff)
        # The second look, `settle` seconds after the mark: roots recorded since the mark, and
        # open records claimed since the first look, keep what they reach.
        time.sleep(max(0.0, settle - (time.monotonic() - marked)))
        live_now, _ = repo_names(objects)
        again, _ = scan_roots(objects, live_now, cutoff, since=started)
        if extra_roots is not None:
            again.update(extra_roots(started))
        roots.update(again)
        orphans = still_orphans(objects, orphans, roots)
        expand_manifests(objects, roots, expanded)
        revived = live_now & dead
        garbage = [Garbage("abandoned open commits", info.key, info.size) for info in orphans]
        garbage += _candidates_still_garbage(candidates, roots, revived)
        for item in garbage:
            if item.kind == "temp objects" and not objects.exists(item.key):
                continue  # a big upload moved it into place meanwhile: nothing to free
            if not dry_run:
                objects.delete(item.key)
            report.freed[item.kind].add(item.size)
        for upload in _stale_uploads(objects, cutoff):
            if not dry_run:
                objects.abort_upload(upload)
            report.freed["incomplete uploads"].add(upload.size)
        _drop_old_marks(objects, cutoff, keep=mark, dry_run=dry_run)
        report.kept_blobs, report.kept_manifests = len(roots.blobs), len(roots.manifests)
        report.kept_packs = len(roots.packs)
    finally:
        objects.delete(mark)
    return report


def _candidates(objects: ObjectStore, roots: Roots, dead: set[str], cutoff: datetime) -> list[Garbage]:
    infos: list[ObjectInfo] = []
    for prefix in (BLOB_PREFIX, PACK_PREFIX, MANIFEST_PREFIX, TEMP_PREFIX):
        infos.extend(objects.list_with_times(prefix))
    for repo in sorted(dead):
        infos.extend(objects.list_with_times(repo_prefix(repo)))
    return list(find_garbage(infos, roots, dead, cutoff))


def _candidates_still_garbage(candidates: list[Garbage], roots: Roots, revived: set[str]) -> Iterator[Garbage]:
    for item in candidates:
        if item.kind == "blobs" and blob_id_of(item.key) in roots.blobs:
            continue
        if item.kind == "packs" and pack_id_of(item.key) in roots.packs:
            continue
        if item.kind == "manifests" and manifest_id_of(item.key) in roots.manifests:
            continue
        if item.kind == "deleted-repo records" and item.key.split("/", 2)[1] in revived:
            continue  # a repo of that name was created meanwhile: leave its folder alone
        yield item


def _stale_uploads(objects: ObjectStore, cutoff: datetime) -> list[IncompleteUpload]:
    return [upload for upload in objects.incomplete_uploads() if upload.started < cutoff]


def _drop_old_marks(objects: ObjectStore, cutoff: datetime, keep: str, dry_run: bool) -> None:
    """Marks of runs that were killed before they removed their own."""
    for info in list(objects.list_with_times(GC_MARK_PREFIX)):
        if info.key != keep and info.modified < cutoff and not dry_run:
            objects.delete(info.key)
