"""The object-store protocol every backend implements, and its in-memory twin.

Keys are `/`-separated strings without a leading slash. `list` is a raw string-prefix match
(as S3's `Prefix`); `list_children` treats its prefix as a folder and returns the names one
level below it, folders with a trailing `/` (as S3's `Delimiter='/'`).

Keys under `_herd/` are the stores' own bookkeeping (the S3 conditional-write verdict, garbage
collection marks): listings hide them unless the prefix asked for starts with `_herd`, so a
walk of the whole store sees data and records only.

For garbage collection every store also tells when each key was last written
(`list_with_times`, on the store's own clock) and which writes were left unfinished by a
killed writer (`incomplete_uploads`: a local temp file, an S3 multipart upload), which
`abort_upload` removes.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from storage.errors import InvalidArgument, ObjectNotFound
from storage.layout import RESERVED_PREFIX

COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    """A key with its size and when it was last written, on the store's clock (UTC)."""

    key: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class IncompleteUpload:
    """A write a killed writer left unfinished: a local temp file or an S3 multipart upload."""

    key: str  # the key (local: the temp file's path below the root) being written
    upload_id: str  # what abort_upload needs: the S3 upload id, or the local temp file's path
    size: int  # bytes it holds so far
    started: datetime  # S3: initiated; local: the temp file's last write (UTC)


@runtime_checkable
class ObjectStore(Protocol):
    """A flat key → bytes store with create-only and compare-and-set writes."""

    url: str

    def put(self, key: str, data: bytes) -> None:
        """Write `data` at `key`, replacing any previous body."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create `key` with `data`; False when it already exists."""
        ...

    def put_chunks_if_absent(self, key: str, chunks: Iterable[bytes]) -> bool:
        """Create `key` with the concatenation of `chunks`, taken one at a time so a big record
        is never whole in memory; False when it exists."""
        ...

    def put_file(self, key: str, path: Path) -> None:
        """Stream a local file to `key` (multipart on S3)."""
        ...

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        """Stream a readable binary stream to `key` until EOF."""
        ...

    def get(self, key: str) -> bytes:
        """The whole body of `key`; ObjectNotFound when missing."""
        ...

    def get_file(self, key: str, path: Path) -> None:
        """Stream `key` to a local file (temp file + rename)."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A streaming reader over the body of `key`."""
        ...

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Up to `length` bytes of `key` from `offset` (fewer past its end); ObjectNotFound when
        missing."""
        ...

    def exists(self, key: str) -> bool:
        """Whether `key` exists."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Every key starting with `prefix`, sorted."""
        ...

    def list_children(self, prefix: str) -> builtins.list[str]:
        """Names one level below the folder `prefix` ("a", "b/"), sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is fine."""
        ...

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The body of `key` and its CAS token, or None when missing."""
        ...

    def compare_and_set(self, key: str, token: str | None, data: bytes) -> bool:
        """Write `data` iff the current token is `token` (None = create-only); False on a lost race."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A real file holding the body of `key`, or None (missing key or remote store)."""
        ...

    def list_with_times(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every key starting with `prefix`, sorted, with its size and last-write time."""
        ...

    def incomplete_uploads(self) -> Iterator[IncompleteUpload]:
        """Writes a killed writer left behind (temp files, multipart uploads), oldest unknown."""
        ...

    def abort_upload(self, upload: IncompleteUpload) -> None:
        """Remove an incomplete upload; one already gone is fine."""
        ...


def hidden(key: str, prefix: str) -> bool:
    """Whether a listing for `prefix` hides `key`: herd's own keys unless asked for."""
    return key.startswith(RESERVED_PREFIX) and not prefix.startswith(RESERVED_PREFIX[:-1])


def check_key(key: str) -> str:
    """Reject keys every backend cannot store the same way."""
    if not key or key.startswith("/") or "\x00" in key:
        raise InvalidArgument(f"invalid object key '{key}'")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidArgument(f"invalid object key '{key}': empty, '.' or '..' segment")
    return key


def folder_prefix(prefix: str) -> str:
    """`a/b` and `a/b/` both mean the folder `a/b/`; `` is the root."""
    if prefix and not prefix.endswith("/"):
        return prefix + "/"
    return prefix


def children_of(keys: Iterator[str] | list[str], folder: str) -> list[str]:
    """Collapse keys under `folder` into one level of names, sorted."""
    names: set[str] = set()
    for key in keys:
        rest = key[len(folder):]
        slash = rest.find("/")
        names.add(rest if slash < 0 else rest[: slash + 1])
    return sorted(names)


def body_token(data: bytes) -> str:
    """The CAS token of a body on stores without server versions: its sha256."""
    return hashlib.sha256(data).hexdigest()


class MemoryObjectStore:
    """A thread-safe in-memory ObjectStore: the test twin and the `memory://` backend."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._objects: dict[str, bytes] = {}
        self._times: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        """Write `data` at `key`, replacing any previous body."""
        check_key(key)
        with self._lock:
            self._objects[key] = bytes(data)
            self._times[key] = _now()

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create `key` with `data`; False when it already exists."""
        check_key(key)
        with self._lock:
            if key in self._objects:
                return False
            self._objects[key] = bytes(data)
            self._times[key] = _now()
            return True

    def put_chunks_if_absent(self, key: str, chunks: Iterable[bytes]) -> bool:
        """Create `key` with the chunks joined; False when it already exists."""
        return self.put_if_absent(key, b"".join(chunks))

    def put_file(self, key: str, path: Path) -> None:
        """Read a local file into `key`."""
        self.put(key, Path(path).read_bytes())

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        """Read a stream to EOF into `key`."""
        buffer = io.BytesIO()
        shutil.copyfileobj(stream, buffer, COPY_CHUNK)
        self.put(key, buffer.getvalue())

    def get(self, key: str) -> bytes:
        """The whole body of `key`; ObjectNotFound when missing."""
        with self._lock:
            try:
                return self._objects[key]
            except KeyError:
                raise ObjectNotFound(key, self.url) from None

    def get_file(self, key: str, path: Path) -> None:
        """Write the body of `key` to a local file (temp + rename, like the real stores)."""
        data = self.get(key)
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.herd-tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def open(self, key: str) -> BinaryIO:
        """A reader over a snapshot of the body of `key`."""
        return io.BytesIO(self.get(key))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """A slice of the body of `key` (shorter past its end)."""
        return self.get(key)[offset:offset + length]

    def exists(self, key: str) -> bool:
        """Whether `key` exists."""
        with self._lock:
            return key in self._objects

    def list(self, prefix: str) -> Iterator[str]:
        """Every key starting with `prefix`, sorted (a snapshot taken at the call)."""
        with self._lock:
            keys = [key for key in self._objects if key.startswith(prefix) and not hidden(key, prefix)]
        return iter(sorted(keys))

    def list_with_times(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every key under `prefix`, sorted, with its size and write time (a snapshot)."""
        with self._lock:
            infos = [
                ObjectInfo(key, len(data), self._times[key])
                for key, data in self._objects.items()
                if key.startswith(prefix) and not hidden(key, prefix)
            ]
        return iter(sorted(infos, key=lambda info: info.key))

    def incomplete_uploads(self) -> Iterator[IncompleteUpload]:
        """A memory write is never half done."""
        return iter(())

    def abort_upload(self, upload: IncompleteUpload) -> None:
        """Nothing to abort in memory."""

    def list_children(self, prefix: str) -> builtins.list[str]:
        """Names one level below the folder `prefix`, folders with a trailing `/`."""
        folder = folder_prefix(prefix)
        return children_of(self.list(folder), folder)

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is fine."""
        with self._lock:
            self._objects.pop(key, None)
            self._times.pop(key, None)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The body of `key` and its sha256 token, or None when missing."""
        with self._lock:
            data = self._objects.get(key)
        return None if data is None else (data, body_token(data))

    def compare_and_set(self, key: str, token: str | None, data: bytes) -> bool:
        """Write iff the body's sha256 is `token` (None = create-only)."""
        check_key(key)
        with self._lock:
            current = self._objects.get(key)
            if token is None and current is not None:
                return False
            if token is not None and (current is None or body_token(current) != token):
                return False
            self._objects[key] = bytes(data)
            self._times[key] = _now()
            return True

    def local_path(self, key: str) -> Path | None:
        """Memory has no files."""
        return None

    def __repr__(self) -> str:
        return f"MemoryObjectStore({self.url!r})"


def _now() -> datetime:
    return datetime.now(timezone.utc)
