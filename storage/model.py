"""The records of versioned data: repos, branches, commits, files, manifests.

All are frozen pydantic models. `canonical_bytes()` is sorted-key compact JSON, so a record's
content hash is stable across processes and machines.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes):
        return cls.model_validate_json(data)


class FileEntry(Record):
    """A file is the concatenation of its chunk blobs (SHA-256 hex ids)."""

    chunks: tuple[str, ...]
    size: int = Field(ge=0)

    @property
    def hash(self) -> str:
        if len(self.chunks) == 1:
            return self.chunks[0]
        return sha256_hex("\n".join(self.chunks).encode())

    def appended(self, other: FileEntry) -> FileEntry:
        return FileEntry(chunks=self.chunks + other.chunks, size=self.size + other.size)


class Manifest(Record):
    """Every file of a commit, by normalised absolute path ('/dir/a.txt')."""

    files: dict[str, FileEntry] = Field(default_factory=dict)

    @property
    def id(self) -> str:
        return sha256_hex(self.canonical_bytes())

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.files.values())


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
    """A repo as listed: its record plus the bytes its branch heads hold (shared files once)."""

    name: str
    description: str = ""
    created: datetime
    size: int = 0
    branches: tuple[str, ...] = ()


class FileInfo(Record):
    """One node of a commit's tree: a file, or an implicit directory (size = bytes below it)."""

    path: str
    type: Literal["file", "dir"]
    size: int = 0
    hash: str = ""
    commit: str = ""


class FileDiff(Record):
    """Paths of files added, modified and deleted between an old and a new commit."""

    added: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
