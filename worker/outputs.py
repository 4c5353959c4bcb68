"""Turn what user code left in `/pfs/out` into blobs and a Manifest, without trusting it.

Output from user code is herd's main attack surface: a symlink to a host file must never be
uploaded (Pachyderm follows them; herd refuses them). The tree is walked through directory
file descriptors (`openat` with `O_NOFOLLOW`), so no path component is ever resolved through a
link, and every file is checked in full before a single byte is uploaded. It runs once user
code has ended, so on the local store an output file with one name becomes its blob as it is
(BlobStore.adopt_file): linked, not copied. Many small outputs go into packs (storage.packs):
one object for thousands of files, not one each (on the local store, those of a few KiB). A
datum whose whole output is tiny (INLINE_BYTES) stores nothing here: its bytes ride in its
result, and the job's finish packs them with the other datums' (scheduler/inline_outputs.py).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from storage.blobs import PACKED_CHUNK_MAX, BlobStore
from storage.errors import OutputQuotaExceeded, UnsafeOutput
from storage.factory import ensure_format
from storage.layout import INLINE_FORMAT
from storage.model import FileEntry, Manifest
from storage.packs import PACK_MIN_CHUNKS, PackWriter
from storage.paths import MAX_PATH_BYTES, bad_character, printable

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in after the scan must not hang the worker on open.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# A datum's output of at most this many bytes in all rides in its result instead of being
# stored: one object fewer per datum (a request on S3, a linked file locally), at 4/3 of the
# bytes in the result record. Small, because a job's finish holds every result in memory at
# once: 100,000 datums at this bound add about 75 MB there.
INLINE_BYTES = 256
# On a store that can adopt a file (link it as its blob, no copy), outputs up to this size still
# go into packs when there are many: a link, a rename and an inode each cost more than copying
# a few KiB into a pack (6,000 files of 3 KB: 0.20 s collected as links, 0.12 s as one pack).
ADOPTED_PACK_MAX = 64 * 1024


@dataclass(frozen=True)
class _Found:
    path: str  # "/a/b.txt", relative to /pfs/out
    dev: int
    ino: int
    nlink: int
    size: int


@dataclass(frozen=True)
class Collected:
    """A datum's outputs: their manifest, and the bytes of those not stored (by chunk id)."""

    manifest: Manifest
    inline: dict[str, bytes]


def collect_datum_outputs(
    blobs: BlobStore, out_dir: Path, quota_bytes: int | None = None, inline_bytes: int = INLINE_BYTES,
) -> Collected:
    """collect_outputs, but an output of at most `inline_bytes` in all is read, not stored: its
    entries name chunks whose bytes are in `inline` (the store's format is raised first)."""
    root_fd = _open_root(Path(out_dir))
    if root_fd is None:
        return Collected(Manifest(), {})
    try:
        found = _checked(root_fd, quota_bytes)
        if sum(item.size for item in found) > inline_bytes:
            return Collected(_stored(blobs, root_fd, found), {})
        read = [(item.path, _read(root_fd, item)) for item in found]
    finally:
        os.close(root_fd)
    return _inlined(blobs, read)


def collect_output_files(
    blobs: BlobStore, files: Mapping[str, bytes], quota_bytes: int | None = None, inline_bytes: int = INLINE_BYTES,
) -> Collected:
    """collect_datum_outputs for outputs a runtime read into memory (`RunResult.outputs`: 'a/b'
    -> bytes): the same name checks, quota and inline bound; stored ones go into packs when
    there are many (a loose blob each otherwise), as on a store that cannot adopt files."""
    found = sorted((_checked_name(name), data) for name, data in files.items())
    total = sum(len(data) for _, data in found)
    _check_quota(total, quota_bytes)
    if total <= inline_bytes:
        return _inlined(blobs, [(path, data) for (_, path), data in found])
    if len(found) < PACK_MIN_CHUNKS:
        return Collected(Manifest(files={
            path: FileEntry(chunks=(digest,), size=size) for (_, path), (digest, size)
            in ((key, blobs.put_bytes(data)) for key, data in found)
        }), {})
    writer = PackWriter(blobs.objects)
    for _, data in found:
        writer.add(data)  # one above PACKED_CHUNK_MAX becomes a loose blob
    return Collected(Manifest(files={path: entry for ((_, path), _), entry in zip(found, writer.close(), strict=True)}), {})


def _inlined(blobs: BlobStore, files: list[tuple[str, bytes]]) -> Collected:
    """Outputs carried in the result, not stored: entries naming chunks whose bytes are `inline`."""
    inline: dict[str, bytes] = {}
    entries = {}
    for path, data in files:
        digest = hashlib.sha256(data).hexdigest()
        inline[digest] = data
        entries[path] = FileEntry(chunks=(digest,), size=len(data))
    if inline:
        ensure_format(blobs.objects, INLINE_FORMAT)  # before any result names a chunk not stored
    return Collected(Manifest(files=entries), inline)


def _checked_name(name: str) -> tuple[tuple[str, ...], str]:
    """('a', 'b') and '/a/b' for an output named 'a/b', refused as a walk of /pfs/out refuses
    it; the segments sort the files as that walk would find them."""
    path = ""
    segments = tuple(name.split("/"))
    for segment in segments:
        path = _checked_path(path, segment)
    return segments, path


def collect_outputs(blobs: BlobStore, out_dir: Path, quota_bytes: int | None = None) -> Manifest:
    """Upload every regular file under `out_dir` and return their Manifest.

    Args:
        blobs: where file bodies are stored (content-addressed, deduplicated).
        out_dir: the host folder user code saw as `/pfs/out`.
        quota_bytes: the largest total size accepted, or None for no limit.
    Returns:
        A Manifest of normalised paths (`/x/y`); empty directories are dropped.
    Raises:
        UnsafeOutput: a symlink, FIFO, device, socket, outside hard link or bad name, by path.
        OutputQuotaExceeded: the output is larger than `quota_bytes` (nothing is uploaded).
    """
    return collect_datum_outputs(blobs, out_dir, quota_bytes, inline_bytes=-1).manifest  # every output stored


def _checked(root_fd: int, quota_bytes: int | None) -> list[_Found]:
    """Every file below `root_fd`, each checked (UnsafeOutput, OutputQuotaExceeded)."""
    found: list[_Found] = []
    _scan(root_fd, "", found)
    _check_hard_links(found)
    _check_quota(sum(item.size for item in found), quota_bytes)
    return found


def _stored(blobs: BlobStore, root_fd: int, found: list[_Found]) -> Manifest:
    bound = ADOPTED_PACK_MAX if blobs.can_adopt else PACKED_CHUNK_MAX
    small = [item for item in found if item.size <= bound]
    if len(small) < PACK_MIN_CHUNKS:
        small = []
    packed = _pack(blobs, root_fd, small)
    return Manifest(files={item.path: packed.get(item.path) or _upload(blobs, root_fd, item) for item in found})


def _open_root(out_dir: Path) -> int | None:
    """A descriptor of /pfs/out itself (a real directory, not a link); None when it is gone."""
    try:
        return os.open(out_dir, _DIR_FLAGS)
    except FileNotFoundError:
        return None  # user code removed /pfs/out: no output
    except OSError as exc:
        raise UnsafeOutput("/", f"/pfs/out is not a directory ({exc.strerror})") from None


def _scan(dir_fd: int, prefix: str, found: list[_Found]) -> None:
    """Depth-first, sorted walk below `dir_fd`; files into `found`, anything else refused."""
    with os.scandir(dir_fd) as entries:
        names = sorted(entry.name for entry in entries)
    for name in names:
        path = _checked_path(prefix, name)
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISREG(info.st_mode):
            found.append(_Found(path, info.st_dev, info.st_ino, info.st_nlink, info.st_size))
        elif stat.S_ISDIR(info.st_mode):
            child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                _scan(child, path, found)
            finally:
                os.close(child)
        else:
            raise UnsafeOutput(path, _why_refused(info.st_mode, dir_fd, name))


def _checked_path(prefix: str, name: str) -> str:
    """`prefix/name`, refused when it cannot be a herd file path."""
    path = f"{prefix}/{name}"
    problem = bad_character(name)  # the rule storage.paths applies to every herd path
    if problem is not None:
        raise UnsafeOutput(printable(path), f"the name {problem}")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnsafeOutput(path.encode("utf-8", "replace").decode(), "the name is not valid UTF-8") from None
    if size > MAX_PATH_BYTES:
        raise UnsafeOutput(path[:64] + "...", f"the path is longer than {MAX_PATH_BYTES} bytes")
    return path


def _why_refused(mode: int, dir_fd: int, name: str) -> str:
    """A user-facing reason for refusing a non-regular file."""
    if stat.S_ISLNK(mode):
        target = os.readlink(name, dir_fd=dir_fd)
        return f"is a symbolic link (to '{target}'); herd never follows links in /pfs/out"
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"))
    kind = next((label for test, label in kinds if test(mode)), "not a regular file")
    return f"is {kind}; only regular files and directories can be output"


def _check_hard_links(found: list[_Found]) -> None:
    """A file with more links than herd saw in /pfs/out is shared with something outside it."""
    seen = Counter((item.dev, item.ino) for item in found)
    for item in found:
        if item.nlink > seen[(item.dev, item.ino)]:
            raise UnsafeOutput(item.path, f"is a hard link to a file outside /pfs/out ({item.nlink} links)")


def _check_quota(total: int, quota_bytes: int | None) -> None:
    if quota_bytes is not None and total > quota_bytes:
        raise OutputQuotaExceeded(quota_bytes, f"{total} bytes")


def _pack(blobs: BlobStore, root_fd: int, small: list[_Found]) -> dict[str, FileEntry]:
    """The small files' entries, their bytes stored in packs (nothing for an empty list)."""
    if not small:
        return {}
    writer = PackWriter(blobs.objects)
    for item in small:
        writer.add(_read(root_fd, item))
    return {item.path: entry for item, entry in zip(small, writer.close(), strict=True)}


def _read(root_fd: int, item: _Found) -> bytes:
    """A small scanned file's bytes, reopened and checked to be the size scanned. Read through
    the descriptor itself: a file object costs more than the read of a few KiB (6,000 outputs
    of 3 KB: 0.05 s instead of 0.08)."""
    fd = _reopened_fd(root_fd, item)
    try:
        parts, left = [], item.size + 1  # one byte more: a file grown since the scan is refused
        while left > 0 and (part := os.read(fd, left)):
            parts.append(part)
            left -= len(part)
    finally:
        os.close(fd)
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    if len(data) != item.size:
        raise UnsafeOutput(item.path, f"changed size while herd read it ({item.size} -> {len(data)} bytes)")
    return data


def _reopened(root_fd: int, item: _Found) -> BinaryIO:
    """The scanned file opened again (a blocking file object), and checked to be that file."""
    fd = _reopened_fd(root_fd, item)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _reopened_fd(root_fd: int, item: _Found) -> int:
    """The scanned file opened again without following links, and checked to be that file."""
    try:
        fd = os.open(item.path.lstrip("/"), _FILE_FLAGS, dir_fd=root_fd)
    except OSError as exc:
        raise UnsafeOutput(item.path, f"changed while herd read /pfs/out ({exc.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (item.dev, item.ino):
        os.close(fd)
        raise UnsafeOutput(item.path, "changed while herd read /pfs/out")
    return fd


def _upload(blobs: BlobStore, root_fd: int, item: _Found) -> FileEntry:
    """Store one scanned file, reopened and checked."""
    with _reopened(root_fd, item) as handle:
        digest, size = blobs.adopt_file(handle)  # user code has ended: the file may become the blob
    if size != item.size:
        raise UnsafeOutput(item.path, f"changed size while herd read it ({item.size} -> {size} bytes)")
    return FileEntry(chunks=(digest,), size=size)
