"""The records of versioned data: repos, branches, commits, files, manifests.

All are frozen pydantic models. `canonical_bytes()` is sorted-key compact JSON, so a record's
content hash is stable across processes and machines.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from storage.collector import collector_paused
from storage.errors import DataCorrupted
from storage.layout import manifest_key
from storage.paths import printable


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the bytes every content hash is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_fields(fields: Iterable[str]) -> str:
    """sha256 hex over length-prefixed UTF-8 fields, so ('ab', 'c') never equals ('a', 'bc')."""
    digest = hashlib.sha256()
    for text in fields:
        data = text.encode()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def record_kind(model: type) -> str:
    """'OpenCommit' -> 'open commit': what a message calls a record of this model."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", model.__name__).lower()


# Records from this size up (a manifest, a plan, a datum index) are parsed by json.loads and then
# validated, with the cyclic collector paused (storage/collector.py): they make an object per file
# or datum and no cycle. A 100,000-file manifest (20 MB, packed) parses in 0.36 s instead of
# 0.67 s by pydantic-core's own JSON parse with the collector on, and peaks 75 MB lower.
BIG_RECORD_BYTES = 1024 * 1024
# What a parse of stored bytes raises (JSONDecodeError and UnicodeDecodeError are ValueErrors;
# json.loads of a crafted, deeply nested record raises RecursionError).
_UNPARSABLE = (ValidationError, ValueError, RecursionError)


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes, key: str | None = None) -> Self:
        """Parse a stored record; DataCorrupted naming `key` (or the record kind) when it does
        not parse, never a pydantic, JSON or Unicode traceback."""
        try:
            return cls._parse_stored(data)
        except _UNPARSABLE as exc:
            raise corrupt_record(cls, key, exc) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:
        """Stored records are read with this too (scheduler.store): bad bytes → DataCorrupted.

        Only for bytes herd stored: user input is validated with `model_validate` instead.
        """
        try:
            return cls._parse_stored(json_data, **kwargs)
        except _UNPARSABLE as exc:
            raise corrupt_record(cls, None, exc) from None

    @classmethod
    def _parse_stored(cls, data: str | bytes | bytearray, **kwargs: Any) -> Self:
        if len(data) < BIG_RECORD_BYTES:
            return super().model_validate_json(data, **kwargs)
        if not isinstance(data, str):
            data = data.decode()  # UTF-8 only, as pydantic's own parse (json.loads would guess)
        with collector_paused():
            return super().model_validate(json.loads(data), **kwargs)


class LenientRecord(Record):
    """A Record that ignores fields it does not know instead of refusing them, so records a newer
    herd wrote stay readable (the scheduler's pipeline and job records: they gain fields)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


def corrupt_record(model: type, key: str | None, exc: Exception) -> DataCorrupted:
    """One line naming the record (key or kind) and the first thing wrong, never its bytes."""
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        why = f"{where}: {first.get('msg', '')}" if where else str(first.get("msg", ""))
    else:
        why = type(exc).__name__
    why = printable(why)[:200]  # a corrupt key may hold escape codes: never send them to a terminal
    name = f"{record_kind(model)} record '{key}'" if key else f"a stored {record_kind(model)} record"
    error = DataCorrupted(f"{name} is corrupt: {why}; run 'herd fsck'")
    error.key, error.why = key, why  # type: ignore[attr-defined]
    return error


Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
# Where a chunk lies inside a pack: (pack id, offset, length). Checked by pydantic-core alone (no
# Python validator): a manifest of 100,000 files is parsed on every plan.
PackSlice = tuple[Hex64, Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]]


def _no_slices(value: tuple[PackSlice | None, ...]) -> bool:
    return not value


class FileEntry(Record):
    """A file is the concatenation of its chunk blobs (SHA-256 hex ids).

    A chunk is a loose blob (`blobs/<id>`), or lies in a pack: `packed[i]` is then where chunk i
    is (format 2). `packed` is empty when every chunk is loose, and then not written at all, so
    an entry's bytes, and every manifest id, are what format 1 made of them. A chunk's id is
    its content hash wherever it lies: file hashes, datum ids and diffs never see packs."""

    # Declared in sorted order: Manifest.canonical_bytes relies on pydantic writing them so.
    chunks: tuple[str, ...]
    packed: tuple[PackSlice | None, ...] = Field(default=(), exclude_if=_no_slices)
    size: int = Field(ge=0)

    @property
    def hash(self) -> str:
        if len(self.chunks) == 1:
            return self.chunks[0]
        return sha256_hex("\n".join(self.chunks).encode())

    def slices(self) -> list[tuple[str, PackSlice | None]]:
        """Each chunk with where it lies in a pack (None: a loose blob); DataCorrupted when a
        stored entry's `packed` does not match its chunks."""
        if not self.packed:
            return [(digest, None) for digest in self.chunks]
        if len(self.packed) != len(self.chunks):
            raise DataCorrupted(
                f"a file entry places {len(self.packed)} chunks in packs but has {len(self.chunks)}; run 'herd fsck'"
            )
        return list(zip(self.chunks, self.packed))

    def appended(self, other: FileEntry) -> FileEntry:
        return concatenated((self, other))


def concatenated(entries: Iterable[FileEntry]) -> FileEntry:
    """One entry holding the entries' chunks one after another, each still where it lies."""
    entries = tuple(entries)
    parts = [part for entry in entries for part in entry.slices()]
    packed = tuple(where for _, where in parts) if any(where for _, where in parts) else ()
    return FileEntry(chunks=tuple(digest for digest, _ in parts), size=sum(e.size for e in entries), packed=packed)


class Manifest(Record):
    """Every file of a commit, by normalised absolute path ('/dir/a.txt')."""

    files: dict[str, FileEntry] = Field(default_factory=dict)

    def canonical_bytes(self) -> bytes:
        """What `canonical_json` makes of the manifest, written by pydantic-core: paths in sorted
        order, entry fields declared sorted, and the same escapes as json.dumps with
        ensure_ascii=False (tests/storage/test_model_json.py checks the bytes are equal). Ten
        times faster for 100,000 files, and every commit and merge writes one."""
        paths = list(self.files)
        if paths != sorted(paths):
            ordered = dict(sorted(self.files.items()))
            return self.__pydantic_serializer__.to_json(Manifest.model_construct(files=ordered))
        return self.__pydantic_serializer__.to_json(self)

    @property
    def id(self) -> str:
        return sha256_hex(self.canonical_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, key: str | None = None, expected_id: str | None = None) -> Self:
        """Parse a stored manifest; with `expected_id` (its content address) check the bytes
        hash to it first: a manifest is stored as its canonical bytes at manifests/<sha256>."""
        if expected_id is not None:
            check_manifest_bytes(data, key, expected_id)
        return super().from_bytes(data, key or (manifest_key(expected_id) if expected_id else None))

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.files.values())


# A manifest, a plan or a datum index is stored as a layer on an earlier one only while the chain
# stays short (a reader resolves every layer) and the layer small beside the whole: at most
# MAX_LAYERS deep, changing at most 1/LAYER_SHARE of the whole's files, datums or entries.
MAX_LAYERS = 8
LAYER_SHARE = 4


def check_manifest_bytes(data: bytes, key: str | None, expected_id: str) -> None:
    """DataCorrupted (with `key` and `why` for fsck) unless `data` hashes to its id."""
    actual = sha256_hex(data)
    if actual != expected_id:
        key = key or manifest_key(expected_id)
        error = DataCorrupted(
            f"manifest record '{key}' is corrupt: its {len(data)} bytes hash to '{actual}'; run 'herd fsck'"
        )
        error.key = key  # type: ignore[attr-defined]
        error.why = f"its {len(data)} bytes hash to '{actual}'"  # type: ignore[attr-defined]
        raise error


class ManifestLayer(Record):
    """A manifest stored as what it changes in an earlier one (storage format 4): the files of
    manifest `base` less `deleted`, with `files` added or replaced. Content-addressed like a whole
    manifest (at the hash of its bytes); read whole (Commits.manifest). `depth` counts the layers
    down to a whole manifest, so a reader refuses a chain that loops."""

    base: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    depth: int = Field(ge=1)
    deleted: tuple[str, ...] = ()
    files: dict[str, FileEntry] = Field(default_factory=dict)

    def canonical_bytes(self) -> bytes:
        """Paths sorted, fields in declared order: the record starts `{"base":`, which tells it
        from a whole manifest (`{"files":`)."""
        ordered = self.model_copy(update={"deleted": tuple(sorted(self.deleted)), "files": dict(sorted(self.files.items()))})
        return self.__pydantic_serializer__.to_json(ordered)

    def on(self, base: Manifest) -> Manifest:
        """The whole manifest: `base`'s files less `deleted`, plus `files`; in path order when
        `base`'s files were (a stored manifest's are)."""
        files = dict(base.files)
        for path in self.deleted:
            files.pop(path, None)
        last = next(reversed(files), "")
        files.update(self.files)
        if any(path not in base.files and path < last for path in self.files):
            files = dict(sorted(files.items()))  # a new path among the old ones; else already in order
        return Manifest.model_construct(files=files)


def stored_manifest(data: bytes, key: str, expected_id: str) -> Manifest | ManifestLayer:
    """A record under manifests/: its bytes checked against its id, then parsed as a whole
    manifest or as a layer on one."""
    check_manifest_bytes(data, key, expected_id)
    return manifest_record(data, key)


def manifest_record(data: bytes, key: str) -> Manifest | ManifestLayer:
    """A record under manifests/ parsed, as a whole manifest or a layer (its bytes unchecked)."""
    if data.startswith(b'{"base":'):
        return ManifestLayer.from_bytes(data, key)
    return Manifest.from_bytes(data, key)


class CommitRef(Record):
    repo: str
    id: str
    branch: str | None = None

    def __str__(self) -> str:
        return f"{self.repo}@{self.id}"


class BranchRef(Record):
    repo: str
    name: str


class Repo(Record):
    name: str
    description: str = ""
    created: datetime


class Branch(Record):
    repo: str
    name: str
    head: str | None = None
    generation: int = 0
    writer: str = ""
    provenance: tuple[BranchRef, ...] = ()
    # The one open commit on this branch (claimed in the same CAS as the head moves), or None.
    open_commit: str | None = None


class Commit(Record):
    id: str
    repo: str
    branch: str | None = None
    parent: str | None = None
    started: datetime
    finished: datetime | None = None
    size: int = 0
    description: str = ""
    provenance: tuple[CommitRef, ...] = ()
    manifest: str | None = None
    failed_reason: str | None = None

    @property
    def ref(self) -> CommitRef:
        return CommitRef(repo=self.repo, id=self.id, branch=self.branch)


class RepoInfo(Record):
    """A repo as listed: its record plus its size (pachctl's: master's head's logical size)."""

    name: str
    description: str = ""
    created: datetime
    size: int = 0
    branches: tuple[str, ...] = ()


_set = object.__setattr__  # a frozen model refuses its own __setattr__


class FileInfo(Record):
    """One node of a commit's tree: a file, or an implicit directory (size = bytes below it)."""

    path: str
    type: Literal["file", "dir"]
    size: int = 0
    hash: str = ""
    commit: str = ""

    @classmethod
    def unchecked(cls, path: str, type: Literal["file", "dir"], size: int, hash: str, commit: str) -> Self:  # noqa: A002
        """A FileInfo of values that are valid already (a parsed manifest's path, size and hash),
        made as `model_construct` makes a model, through the model's documented instance
        attributes but without its loop over fields: glob-file and list-file make one per match,
        and 100,000 took 0.32 s validated, 0.44 s by model_construct, 0.21 s so
        (tests/storage/test_model.py checks it equals the validated one)."""
        info = cls.__new__(cls)
        _set(info, "__dict__", {"path": path, "type": type, "size": size, "hash": hash, "commit": commit})
        _set(info, "__pydantic_fields_set__", {"path", "type", "size", "hash", "commit"})
        _set(info, "__pydantic_extra__", None)
        _set(info, "__pydantic_private__", None)
        return info


class FileDiff(Record):
    """Paths of files added, modified and deleted between an old and a new commit."""

    added: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
