"""Content-addressed blobs: SHA-256 hex ids at `blobs/<h[:2]>/<h>`, hashed while bytes move.

Blobs up to 4 MiB are read into memory, hashed, and written only when `exists` says no. Larger
ones take one of two paths, chosen by what the object store can do:
- a store with a cheap `rename(src, dst)` (the local folder) gets the bytes once, into a temp
  key under `tmp/blobs/`, while a second thread hashes them (hashlib drops the GIL, so the two
  overlap on two cores); the temp key is then renamed to the blob's key, or dropped when that
  blob already exists. Writing before knowing is cheaper than a hash pass before the copy;
- any other store (S3, memory) is asked `exists` after hashing, so an existing blob is never
  uploaded twice; a non-seekable stream is spooled to a local temp file while it is hashed.
Every read is verified against the blob's id while the bytes move (no second pass): the
first block is hashed inline, later ones on a second thread. A mismatch, a short or a long body
raises DataCorrupted before the read completes: `get_file` removes its temp file and leaves no
file, and the reader of `open` holds back the blob's last block until the hash is checked, so a
consumer never reaches a clean EOF after bad bytes (a stream it already passed on, such as
stdout, may have received the blocks before that one). `local_path` is the one unverified way in.
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import re
import tempfile
import threading
import uuid
from pathlib import Path
from typing import BinaryIO, cast

from storage.errors import DataCorrupted, InvalidArgument, ObjectNotFound
from storage.objects import ObjectStore

CHUNK = 1024 * 1024
# Below this a blob is read into memory: one buffer beats a thread and a temp file.
SMALL = 4 * 1024 * 1024
# Remote blobs up to this size are written create-only in one request instead of HEAD + PUT.
CONDITIONAL_PUT_MAX = 64 * 1024
BLOB_PREFIX = "blobs/"
TMP_PREFIX = "tmp/blobs/"
_HASH_RE = re.compile(r"[0-9a-f]{64}")  # only ever used with fullmatch


def blob_key(digest: str) -> str:
    """The object key of a blob id, after checking it is a SHA-256 hex digest."""
    if not _HASH_RE.fullmatch(digest):
        raise InvalidArgument(f"invalid blob id '{digest}': expected 64 lowercase hex digits")
    return f"{BLOB_PREFIX}{digest[:2]}/{digest}"


class _ThreadedHasher:
    """sha256 on a second thread: hashlib drops the GIL on big buffers, so hashing overlaps I/O."""

    def __init__(self, sha: hashlib._Hash | None = None) -> None:
        self._sha = sha if sha is not None else hashlib.sha256()
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

    def abandon(self) -> None:
        """Stop the thread without a result (the read failed or was dropped half-way)."""
        if self._thread.is_alive():
            while True:  # drain, so the sentinel fits in the bounded queue
                try:
                    self._chunks.get_nowait()
                except queue.Empty:
                    break
            self._chunks.put(None)
            self._thread.join()


class _Verifier:
    """Checks that bytes read from a blob hash to its id: inline while it is one block, then on a
    second thread, so a big blob's hashing overlaps whatever the reader does with the bytes."""

    def __init__(self, digest: str, where: str) -> None:
        self.digest, self.where, self.size = digest, where, 0
        self._sha = hashlib.sha256()
        self._blocks = 0
        self._thread: _ThreadedHasher | None = None

    def update(self, chunk: bytes) -> None:
        """Count and hash a block; the caller must not mutate it afterwards."""
        self.size += len(chunk)
        self._blocks += 1
        if self._thread is not None:
            self._thread.update(chunk)
        elif self._blocks == 1:
            self._sha.update(chunk)
        else:  # a second block: the blob is big, hand the running hash to a thread
            self._thread = _ThreadedHasher(self._sha)
            self._thread.update(chunk)

    def check(self) -> None:
        """DataCorrupted unless everything read hashes to the blob id."""
        thread, self._thread = self._thread, None
        actual = thread.hexdigest() if thread is not None else self._sha.hexdigest()
        if actual != self.digest:
            raise corrupt_blob(self.digest, self.where, f"its {self.size} bytes hash to '{actual}'")

    def abandon(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.abandon()


def corrupt_blob(digest: str, where: str, why: str) -> DataCorrupted:
    """The blob-level DataCorrupted (`.blob` says which); callers above add repo/commit/path."""
    error = DataCorrupted(f"blob '{digest}' in {where} is corrupt: {why}")
    error.blob, error.why = digest, why  # type: ignore[attr-defined]
    return error


class _VerifiedReader(io.RawIOBase):
    """A blob's bytes, verified while they stream: the last block is held back until the hash
    over everything before it matches, so a consumer sees DataCorrupted instead of a clean EOF."""

    def __init__(self, stream: BinaryIO, verifier: _Verifier) -> None:
        self._stream, self._verifier = stream, verifier
        self._ready = memoryview(b"")
        self._held: bytes | None = None
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._ready:
            if self._done:
                return 0
            self._advance()
        n = min(len(buffer), len(self._ready))
        buffer[:n] = self._ready[:n]
        self._ready = self._ready[n:]
        return n

    def _advance(self) -> None:
        chunk = self._stream.read(CHUNK)
        if chunk:
            chunk = bytes(chunk)  # the hasher thread keeps it: never a reused buffer
            self._verifier.update(chunk)
            held, self._held = self._held, chunk
            if held:
                self._ready = memoryview(held)
            return
        self._verifier.check()
        self._done = True
        if self._held:
            self._ready, self._held = memoryview(self._held), None

    def close(self) -> None:
        if not self.closed:
            self._verifier.abandon()
            self._stream.close()
        super().close()


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


def new_temp_file(folder: Path, name: str, dir_fd: int | None = None) -> tuple[int, str]:
    """A new file beside `name` for temp + rename: O_EXCL|O_NOFOLLOW, mode 0666 & ~umask (what
    the final file would get; mkstemp's 0600 would change it). Returns (fd, path or name)."""
    for _ in range(100):
        tmp = f".{name[:200]}.{uuid.uuid4().hex[:12]}.herd-tmp"
        where = tmp if dir_fd is not None else os.path.join(folder, tmp)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
            return os.open(where, flags, 0o666, dir_fd=dir_fd), where
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp name beside '{os.path.join(folder, name)}'")


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
        """Stream a verified blob to a local file (temp beside it + rename).

        ObjectNotFound when missing; DataCorrupted (and no file, not even a temp one) when the
        bytes do not hash to `digest`.
        """
        path = Path(path)
        handle, tmp = new_temp_file(path.parent, path.name)
        try:
            with os.fdopen(handle, "wb") as out:
                self.write_to(digest, out)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def write_to(self, digest: str, out: BinaryIO) -> int:
        """Copy a blob into `out`, hashing while the bytes move; returns the size.

        `out` receives every byte BEFORE the check, so it must be a temp file its caller drops
        when this raises DataCorrupted (ObjectNotFound when the blob is missing).
        """
        verifier = _Verifier(digest, self.objects.url)
        try:
            with self.objects.open(blob_key(digest)) as source:
                while chunk := source.read(CHUNK):
                    chunk = bytes(chunk)
                    verifier.update(chunk)
                    out.write(chunk)
            verifier.check()
        finally:
            verifier.abandon()
        return verifier.size

    def open(self, digest: str) -> BinaryIO:
        """A verified streaming reader over a blob; ObjectNotFound when missing.

        Reading past the end of bad bytes raises DataCorrupted (see the module docstring).
        """
        source = self.objects.open(blob_key(digest))
        raw = _VerifiedReader(source, _Verifier(digest, self.objects.url))
        return io.BufferedReader(raw, CHUNK)  # type: ignore[return-value]

    def verify(self, digest: str) -> int:
        """Read a whole blob and check its hash; returns its size (for fsck).

        ObjectNotFound when missing, DataCorrupted when its bytes do not hash to `digest`.
        """
        verifier = _Verifier(digest, self.objects.url)
        try:
            with self.objects.open(blob_key(digest)) as source:
                while chunk := source.read(CHUNK):
                    verifier.update(bytes(chunk))
            verifier.check()
        finally:
            verifier.abandon()
        return verifier.size

    def exists(self, digest: str) -> bool:
        """Whether a blob is stored."""
        return self.objects.exists(blob_key(digest))

    def local_path(self, digest: str) -> Path | None:
        """The real file of a blob on a local store, else None.

        UNVERIFIED: whoever reads this file gets its bytes unchecked, and a hard link to it
        shares the stored inode. Prefer `get_file`/`open`, which verify while reading.
        """
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
