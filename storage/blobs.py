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
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

from storage.errors import DataCorrupted, InvalidArgument, ObjectNotFound
from storage.layout import blob_key, pack_key, temp_blob_key
from storage.model import PackSlice
from storage.objects import ObjectStore
from storage.streams import PassThrough

CHUNK = 1024 * 1024
# Below this a blob is read into memory: one buffer beats a thread and a temp file.
SMALL = 4 * 1024 * 1024
# Remote blobs up to this size are written create-only in one request instead of HEAD + PUT.
CONDITIONAL_PUT_MAX = 64 * 1024
# The longest chunk a pack holds (storage.packs writes none longer): a manifest claiming a
# longer slice is refused before anything is read.
PACKED_CHUNK_MAX = 1024 * 1024


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


def slice_problem(digest: str, where: PackSlice, data: bytes) -> str | None:
    """Why `data`, read at a chunk's slice of its pack, is not that chunk; None when it is."""
    _, offset, length = where
    if length > PACKED_CHUNK_MAX:
        return f"its slice claims {length} bytes, more than a pack holds per chunk"
    actual = hashlib.sha256(data).hexdigest()
    if len(data) != length or actual != digest:
        return f"its {len(data)} bytes at offset {offset} hash to '{actual}'"
    return None


def corrupt_blob(digest: str, where: str, why: str) -> DataCorrupted:
    """The blob-level DataCorrupted (`.blob` says which); callers above add repo/commit/path."""
    error = DataCorrupted(f"blob '{digest}' in {where} is corrupt: {why}")
    error.blob, error.why = digest, why  # type: ignore[attr-defined]
    return error


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


class BlobStore:
    """Content-addressed blobs over any ObjectStore."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    @property
    def _rename(self) -> Callable[[str, str], None] | None:  # an optional capability, not in the protocol
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
        """Store a local file unless that blob exists; returns (hash, size).

        The blob holds exactly the bytes that were hashed, even while something else writes the
        file (a log still growing, a file rewritten in place): hashing it and then copying it as
        two reads would store the second read's bytes under the first read's hash, a blob that
        fails every verified read, and that later puts of the right bytes would trust as there.
        A store that renames gets the file through put_stream: one read, hashed as it is
        written. Another (S3) needs the key first: the file is hashed, then uploaded through a
        second hash that must match before the upload completes (InvalidArgument otherwise, and
        the multipart upload is aborted: nothing is stored)."""
        path = Path(path)
        with open(path, "rb") as source:
            if self._rename is not None:
                return self.put_stream(source)
            head = read_up_to(source, SMALL + 1)
            if len(head) <= SMALL:
                return self.put_bytes(head)
            source.seek(0)
            digest = hashlib.file_digest(source, "sha256").hexdigest()
            size = source.tell()
            key = blob_key(digest)
            if not self.objects.exists(key):
                source.seek(0)
                self._upload_as_hashed(key, source, digest, path)
            return digest, size

    def _upload_as_hashed(self, key: str, source: BinaryIO, digest: str, path: Path) -> None:
        """Upload `source` to `key`, refusing it at its end unless it hashes to `digest` again."""
        hasher = _ThreadedHasher()

        def same_bytes() -> None:
            if hasher.hexdigest() != digest:
                raise InvalidArgument(
                    f"source file '{path}' changed while it was stored (its bytes no longer hash to "
                    f"what was read first); nothing was stored: put it again once it is complete"
                )

        # hold_last: the check runs before the last block is handed to the upload, so a file that
        # changed fails the upload before S3 makes the object visible.
        reader = PassThrough(source, on_block=hasher.update, on_eof=same_bytes, hold_last=True, block=CHUNK,
                             owns=False)
        try:
            self.objects.put_stream(key, cast(BinaryIO, reader))
        finally:
            hasher.abandon()

    @property
    def can_adopt(self) -> bool:
        """Whether `adopt_file` can make a file its blob without a copy (a local store)."""
        return getattr(self.objects, "adopt", None) is not None

    def adopt_file(self, handle: BinaryIO) -> tuple[str, int]:
        """Store the regular file open as `handle` unless that blob exists; returns (hash, size).

        Only for a file nothing else writes any more (user code's output once it has ended). On
        a store that can `adopt` (the local folder) a file with one name and no extended
        attributes becomes the blob itself: made this process's user's with mode 0644, hashed
        through the descriptor, then linked at its key: no copy, and no new file (on ext4
        without a journal each file made after many freed ones costs a scan). Anything else is
        copied, as put_stream does."""
        adopt = getattr(self.objects, "adopt", None)
        fd = handle.fileno()
        if adopt is not None and _made_plain(fd):
            handle.seek(0)
            digest = hashlib.file_digest(cast(io.BufferedReader, handle), "sha256").hexdigest()
            size = handle.tell()
            try:
                adopt(blob_key(digest), fd)  # False: that blob exists, the same bytes
                return digest, size
            except OSError:
                pass  # not linkable from here (another file system): copied below
        handle.seek(0)
        return self.put_stream(handle)

    def _place(self, tmp_key: str, digest: str) -> None:
        """Rename a fully written temp key to its blob key, or drop it when the blob exists."""
        key = blob_key(digest)
        rename = self._rename
        assert rename is not None, "temp keys are written only on stores that rename"
        if self.objects.exists(key):
            self.objects.delete(tmp_key)
        else:
            rename(tmp_key, key)

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Store a stream read to EOF unless that blob exists; returns (hash, size)."""
        head = read_up_to(stream, SMALL + 1)
        if len(head) <= SMALL:
            return self.put_bytes(head)
        # The bytes already read go first, then the rest of the stream, hashed as they pass
        # (the caller's stream stays open: it is theirs).
        hasher = _ThreadedHasher()
        reader = PassThrough(stream, head=head, on_block=hasher.update, block=CHUNK, owns=False)
        if self._rename is not None:
            return self._put_stream_via_temp_key(reader, hasher)
        return self._put_via_spool(reader, hasher)

    def _put_stream_via_temp_key(self, reader: PassThrough, hasher: _ThreadedHasher) -> tuple[str, int]:
        """Write once into a temp key while hashing, then rename it into place."""
        tmp_key = temp_blob_key(uuid.uuid4().hex)
        try:
            self.objects.put_stream(tmp_key, cast(BinaryIO, reader))
        finally:
            digest = hasher.hexdigest()
        self._place(tmp_key, digest)
        return digest, reader.size

    def _put_via_spool(self, reader: PassThrough, hasher: _ThreadedHasher) -> tuple[str, int]:
        """Spool to a local temp file while hashing, then upload only when missing."""
        with tempfile.TemporaryDirectory(prefix="herd-blob-") as folder:
            spool = Path(folder) / "spool"
            with open(spool, "wb") as out:
                while chunk := reader.read(CHUNK):
                    out.write(chunk)
            digest = hasher.hexdigest()
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
        verifier = _Verifier(digest, self.objects.url)
        # The last block is held back until the hash over everything matches, so a consumer
        # meets DataCorrupted instead of a clean EOF after bad bytes.
        raw = PassThrough(source, on_block=verifier.update, on_eof=verifier.check, hold_last=True,
                          block=CHUNK, on_close=verifier.abandon)
        return io.BufferedReader(raw, CHUNK)

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

    # ---- chunks wherever they lie: a loose blob, or a slice of a pack ------------------------

    def read_slice(self, digest: str, where: PackSlice) -> bytes:
        """The bytes of a packed chunk, checked against its id before any is returned.

        ObjectNotFound when the pack is missing; DataCorrupted when the slice is longer than a
        pack holds per chunk, or its bytes are short or do not hash to `digest`."""
        pack, offset, length = where
        place = f"pack '{pack}' of {self.objects.url}"
        if length > PACKED_CHUNK_MAX:
            raise corrupt_blob(digest, place, slice_problem(digest, where, b"") or "")
        data = self.objects.get_range(pack_key(pack), offset, length)
        problem = slice_problem(digest, where, data)
        if problem is not None:
            raise corrupt_blob(digest, place, problem)
        return data

    def write_chunk_to(self, digest: str, where: PackSlice | None, out: BinaryIO) -> int:
        """Copy one chunk into `out`, verified (see write_to); returns its size."""
        if where is None:
            return self.write_to(digest, out)
        data = self.read_slice(digest, where)
        out.write(data)
        return len(data)

    def open_chunk(self, digest: str, where: PackSlice | None) -> BinaryIO:
        """A verified reader over one chunk (see open)."""
        if where is None:
            return self.open(digest)
        return io.BytesIO(self.read_slice(digest, where))

    def exists(self, digest: str) -> bool:
        """Whether a blob is stored."""
        return self.objects.exists(blob_key(digest))

    def local_path(self, digest: str) -> Path | None:
        """The real file of a blob on a local store, else None.

        UNVERIFIED: whoever reads this file gets its bytes unchecked, and a hard link to it
        shares the stored inode. Prefer `get_file`/`open`, which verify while reading.
        """
        return self.objects.local_path(blob_key(digest))


def read_up_to(stream: BinaryIO, limit: int) -> bytes:
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


# Extended attributes a blob may keep: the security label some systems give every file.
_HARMLESS_XATTRS = frozenset({"security.selinux"})


def _made_plain(fd: int) -> bool:
    """Whether the file at `fd` has one name and only harmless attributes, after making it this
    process's user's with mode 0644 (no setuid, nobody else writes); False leaves it a copy's."""
    try:
        info = os.fstat(fd)
        if info.st_nlink != 1 or not set(os.listxattr(fd)) <= _HARMLESS_XATTRS:
            return False
        if (info.st_uid, info.st_gid) != (os.geteuid(), os.getegid()):
            os.fchown(fd, os.geteuid(), os.getegid())
        os.fchmod(fd, 0o644)
    except OSError:  # not ours to change (another user's file and no root), no xattr support
        return False
    return True
