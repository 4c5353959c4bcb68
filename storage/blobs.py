"""Content-addressed blobs: SHA-256 hex ids at `blobs/<h[:2]>/<h>`, hashed while bytes move.

Blobs up to 4 MiB are read into memory, hashed, and written only when `exists` says no. Larger
ones take one of two paths, chosen by what the object store can do:
- a store with a cheap `rename(src, dst)` (the local folder) gets the bytes once, into a temp
  key under `tmp/blobs/`, while a second thread hashes them (hashlib drops the GIL, so the two
  overlap on two cores); the temp key is then renamed to the blob's key, or dropped when that
  blob already exists. Writing before knowing is cheaper than a hash pass before the copy;
- any other store (S3, memory) is asked `exists` after hashing, so an existing blob is never
  uploaded twice; a non-seekable stream is spooled to a local temp file while it is hashed.
Downloads verify nothing in a second pass: a blob's key is its hash, written bottom-up.
"""

from __future__ import annotations

import hashlib
import io
import queue
import re
import tempfile
import threading
import uuid
from pathlib import Path
from typing import BinaryIO, cast

from storage.errors import InvalidArgument
from storage.objects import ObjectStore

CHUNK = 1024 * 1024
# Below this a blob is read into memory: one buffer beats a thread and a temp file.
SMALL = 4 * 1024 * 1024
# Remote blobs up to this size are written create-only in one request instead of HEAD + PUT.
CONDITIONAL_PUT_MAX = 64 * 1024
BLOB_PREFIX = "blobs/"
TMP_PREFIX = "tmp/blobs/"
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")


def blob_key(digest: str) -> str:
    """The object key of a blob id, after checking it is a SHA-256 hex digest."""
    if not _HASH_RE.match(digest):
        raise InvalidArgument(f"invalid blob id '{digest}': expected 64 lowercase hex digits")
    return f"{BLOB_PREFIX}{digest[:2]}/{digest}"


class _ThreadedHasher:
    """sha256 on a second thread: hashlib drops the GIL on big buffers, so hashing overlaps I/O."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        # Bounded, so a slow hasher throttles the reader instead of buffering the file.
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._run, name="herd-blob-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            self._sha.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._chunks.put(chunk)

    def hexdigest(self) -> str:
        self._chunks.put(None)
        self._thread.join()
        return self._sha.hexdigest()


class _HashingReader(io.RawIOBase):
    """Passes a stream through unchanged while hashing and counting what was read."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._hasher = _ThreadedHasher()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        chunk = self._stream.read(size)
        if chunk:
            # bytes() because a caller may reuse a memoryview/bytearray the hasher still holds.
            chunk = bytes(chunk)
            self._hasher.update(chunk)
            self.size += len(chunk)
        return chunk

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()


def hash_file(path: Path) -> str:
    """SHA-256 hex of a local file, streamed."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class BlobStore:
    """Content-addressed blobs over any ObjectStore."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    @property
    def _rename(self):  # noqa: ANN202 - an optional capability, not part of the protocol
        return getattr(self.objects, "rename", None)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store `data` unless that blob exists; returns (hash, size)."""
        digest = hashlib.sha256(data).hexdigest()
        key = blob_key(digest)
        if self._rename is None and len(data) <= CONDITIONAL_PUT_MAX:
            # One request either way: a create-only PUT of a tiny body costs what the HEAD
            # would, and the store refuses it when the blob exists, so it is never stored twice.
            self.objects.put_if_absent(key, data)
        elif not self.objects.exists(key):
            self.objects.put(key, data)
        return digest, len(data)

    def put_file(self, path: Path) -> tuple[str, int]:
        """Store a local file unless that blob exists; returns (hash, size)."""
        path = Path(path)
        size = path.stat().st_size
        if size <= SMALL:
            return self.put_bytes(path.read_bytes())
        if self._rename is not None:
            return self._put_file_via_temp_key(path), size
        digest = hash_file(path)
        key = blob_key(digest)
        if not self.objects.exists(key):
            self.objects.put_file(key, path)
        return digest, size

    def _put_file_via_temp_key(self, path: Path) -> str:
        """Copy (sendfile) into a temp key while another thread hashes; then rename into place."""
        found: list[str | BaseException] = []

        def hash_in_thread() -> None:
            try:
                found.append(hash_file(path))
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                found.append(exc)

        hasher = threading.Thread(target=hash_in_thread, name="herd-blob-hash", daemon=True)
        hasher.start()
        tmp_key = f"{TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            self.objects.put_file(tmp_key, path)
        finally:
            hasher.join()
        if isinstance(found[0], BaseException):
            self.objects.delete(tmp_key)
            raise found[0]
        self._place(tmp_key, found[0])
        return found[0]

    def _place(self, tmp_key: str, digest: str) -> None:
        """Rename a fully written temp key to its blob key, or drop it when the blob exists."""
        key = blob_key(digest)
        if self.objects.exists(key):
            self.objects.delete(tmp_key)
        else:
            self._rename(tmp_key, key)

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Store a stream read to EOF unless that blob exists; returns (hash, size)."""
        head = _read_up_to(stream, SMALL + 1)
        if len(head) <= SMALL:
            return self.put_bytes(head)
        rest = cast(BinaryIO, _Chain(head, stream))
        if self._rename is not None:
            return self._put_stream_via_temp_key(rest)
        return self._put_via_spool(rest)

    def _put_stream_via_temp_key(self, stream: BinaryIO) -> tuple[str, int]:
        """Write once into a temp key while hashing, then rename it into place."""
        tmp_key = f"{TMP_PREFIX}{uuid.uuid4().hex}"
        reader = _HashingReader(stream)
        try:
            self.objects.put_stream(tmp_key, reader)  # type: ignore[arg-type]
        finally:
            digest = reader.hexdigest()
        self._place(tmp_key, digest)
        return digest, reader.size

    def _put_via_spool(self, stream: BinaryIO) -> tuple[str, int]:
        """Spool to a local temp file while hashing, then upload only when missing."""
        reader = _HashingReader(stream)
        with tempfile.TemporaryDirectory(prefix="herd-blob-") as folder:
            spool = Path(folder) / "spool"
            with open(spool, "wb") as out:
                while chunk := reader.read(CHUNK):
                    out.write(chunk)
            digest = reader.hexdigest()
            key = blob_key(digest)
            if not self.objects.exists(key):
                self.objects.put_file(key, spool)
        return digest, reader.size

    def get_file(self, digest: str, path: Path) -> None:
        """Stream a blob to a local file (temp + rename); ObjectNotFound when missing."""
        self.objects.get_file(blob_key(digest), Path(path))

    def open(self, digest: str) -> BinaryIO:
        """A streaming reader over a blob; ObjectNotFound when missing."""
        return self.objects.open(blob_key(digest))

    def get_bytes(self, digest: str) -> bytes:
        """A whole blob in memory; ObjectNotFound when missing."""
        return self.objects.get(blob_key(digest))

    def exists(self, digest: str) -> bool:
        """Whether a blob is stored."""
        return self.objects.exists(blob_key(digest))

    def local_path(self, digest: str) -> Path | None:
        """The real file of a blob on a local store (to hard-link or copy), else None."""
        return self.objects.local_path(blob_key(digest))


def _read_up_to(stream: BinaryIO, limit: int) -> bytes:
    """Read until `limit` bytes or EOF: a pipe may return short reads before its end."""
    parts: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = stream.read(min(remaining, CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


class _Chain(io.RawIOBase):
    """Bytes already read, followed by the rest of their stream."""

    def __init__(self, head: bytes, tail: BinaryIO) -> None:
        self._head = memoryview(head)
        self._tail = tail

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if self._head:
            chunk, self._head = bytes(self._head[:size]), self._head[size:]
            return chunk
        return self._tail.read(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)
