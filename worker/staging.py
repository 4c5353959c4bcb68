"""Lay out one datum's inputs as user code must see `/pfs`, and remove that folder again.

`<pfs_dir>/<input name>/<original path>` for every file of every input, plus an empty
`<pfs_dir>/out`. Every file is a private copy read through the blob store (which checks its
hash): never a hard link to a stored blob, since a link would let anything that can write
to, chmod or find the host path of an input change stored data. A runtime that only sends
the inputs on (Docker) takes them read into memory instead (`read_datum`), the same checks made.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import BinaryIO, Protocol

from storage.errors import InvalidPath
from storage.model import FileEntry, PackSlice
from storage.paths import normalize_path, parent_dirs, validate_name

OUT = "out"
COPY_CHUNK = 1024 * 1024


class ChunkSource(Protocol):
    """Where staged chunks are read from, verified: a BlobStore, or a batch's PrefetchedChunks."""

    def write_chunk_to(self, digest: str, where: PackSlice | None, out: BinaryIO) -> int: ...


class DatumInputFiles(Protocol):
    """What staging needs of one input of a datum (scheduler.records.PlannedInput fits)."""

    @property
    def name(self) -> str: ...

    @property
    def files(self) -> Mapping[str, FileEntry]: ...

    @property
    def empty_files(self) -> bool: ...


def stage_datum(blobs: ChunkSource, datum_inputs: Iterable[DatumInputFiles], pfs_dir: Path) -> int:
    """Lay out every input file under `pfs_dir` and an empty `out/`.

    Args:
        blobs: where the chunks of each file are read from.
        datum_inputs: the datum's inputs (name, files by original path, empty_files flag).
        pfs_dir: the host folder shown to user code as `/pfs`; created when missing.
    Returns:
        The number of bytes staged (0 for files staged empty).
    Raises:
        InvalidPath: an input name or file path would land outside its folder or clash.
    """
    pfs_dir = Path(pfs_dir)
    (pfs_dir / OUT).mkdir(parents=True, exist_ok=True)
    datum_inputs = list(datum_inputs)
    _drop_other_inputs(pfs_dir, {OUT, *(item.name for item in datum_inputs)})
    staged = 0
    done: set[Path] = set()
    for item in datum_inputs:
        # A group's datum holds several matches of one input, all under /pfs/<name>; matches
        # may overlap (`/**`), and a file they share is staged once.
        root = _input_root(pfs_dir, item.name)
        for path, entry in sorted(item.files.items()):
            target = safe_join(root, path)
            if target not in done:
                done.add(target)
                staged += _stage_file(blobs, entry, target, empty=item.empty_files)
    return staged


def read_datum(
    blobs: ChunkSource, datum_inputs: Iterable[DatumInputFiles], limit: int,
) -> tuple[tuple[str, bytes | None], ...] | None:
    """stage_datum into memory: every folder (bytes None) and file ('<input>/<path>', its bytes
    read verified), parents first and sorted, as a walk of the laid-out folder gives them; the
    same checks and errors. None when the files add up to more than `limit` bytes."""
    datum_inputs = list(datum_inputs)
    if sum(entry.size for item in datum_inputs if not item.empty_files for entry in item.files.values()) > limit:
        return None
    tree: dict[str, bytes | None] = {}
    for item in datum_inputs:
        _check_input_name(item.name)
        tree.setdefault(item.name, None)
        for path, entry in sorted(item.files.items()):
            normal = normalize_path(path)  # refuses '..', NUL, empty segments, over-long paths
            rel = item.name + normal
            if rel in tree:
                if tree[rel] is None:
                    raise InvalidPath(f"path '/pfs/{rel}' is both a file and a directory in the datum")
                continue  # matches may overlap (`/**`): a file they share is read once
            for folder in (item.name + above for above in parent_dirs(normal)):
                if tree.setdefault(folder, None) is not None:
                    raise InvalidPath(f"path '/pfs/{folder}' is both a file and a directory in the datum")
            tree[rel] = b"" if item.empty_files else _read_file(blobs, entry)
    return tuple(sorted(tree.items(), key=lambda item: item[0].split("/")))


def _read_file(blobs: ChunkSource, entry: FileEntry) -> bytes:
    buffer = io.BytesIO()
    for chunk, where in entry.slices():
        blobs.write_chunk_to(chunk, where, buffer)  # checks the chunk's hash
    return buffer.getvalue()


def _drop_other_inputs(pfs_dir: Path, names: set[str]) -> None:
    """Remove the empty input folders a reused datum folder kept for inputs this datum lacks
    (only empty ones: staging never deletes what it did not lay out)."""
    with os.scandir(pfs_dir) as entries:  # a dot name is no input's (a runtime's own scratch)
        stale = [entry.path for entry in entries if entry.name not in names and not entry.name.startswith(".")
                 and entry.is_dir(follow_symlinks=False)]
    for path in stale:
        try:
            os.rmdir(path)
        except OSError:
            pass


def _input_root(pfs_dir: Path, name: str) -> Path:
    """The folder of one input, after checking its name cannot escape or shadow `out`."""
    _check_input_name(name)
    root = pfs_dir / name
    root.mkdir(exist_ok=True)
    return root


def _check_input_name(name: str) -> None:
    validate_name(name, "input")
    if name == OUT:
        raise InvalidPath(f"input name '{name}' is reserved for /pfs/out")


def safe_join(root: Path, path: str) -> Path:
    """`root` joined with a manifest path; InvalidPath when it would leave `root`."""
    normal = normalize_path(path)  # refuses '..', NUL, empty segments, over-long paths
    target = Path(os.path.normpath(os.path.join(root, normal.lstrip("/"))))
    if target == root or root not in target.parents:
        raise InvalidPath(f"path '{path}' escapes the datum folder")
    return target


def _stage_file(blobs: ChunkSource, entry: FileEntry, target: Path, *, empty: bool) -> int:
    """Write one file (a copy of its blob, or the concatenation of its chunks); the bytes staged."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if empty:
            target.touch(exist_ok=False)
            return 0
        # Straight into the target, no temp file and rename: the folder is the datum's own, and
        # a blob that fails its hash check fails the datum before user code runs (its folder
        # is removed after it).
        with open(target, "xb") as out:
            for chunk, where in entry.slices():
                blobs.write_chunk_to(chunk, where, out)
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise InvalidPath(f"path '{target}' is both a file and a directory in the datum") from None
    return entry.size


def _copy_new(source: Path, target: Path) -> None:
    """Copy into a file that must not exist yet."""
    with open(source, "rb") as src, open(target, "xb") as dst:
        shutil.copyfileobj(src, dst, COPY_CHUNK)


def detach_hard_links(pfs_dir: Path) -> int:
    """Replace every hard-linked input file by a private copy; returns how many were copied.

    For runtimes that cannot mount inputs read-only: user code writing to a linked input would
    otherwise write into the blob store.
    """
    copied = 0
    for folder, dirs, files in os.walk(pfs_dir):
        if Path(folder) == Path(pfs_dir):
            dirs[:] = [name for name in dirs if name != OUT]
        for name in files:
            path = Path(folder, name)
            if path.lstat().st_nlink > 1:
                tmp = path.with_name(f".{name}.herd-copy")
                _copy_new(path, tmp)
                os.replace(tmp, path)
                copied += 1
    return copied


def clear_pfs(pfs_dir: Path) -> None:
    """Remove a datum's folder and everything in it (user code may have left it unwritable).

    A datum's folder is new or emptied (WorkerContext.pfs_dir, `empty_for_reuse`), so one
    datum's /pfs/out is never another's."""
    pfs_dir = Path(pfs_dir)
    if pfs_dir.is_dir() and not pfs_dir.is_symlink():
        _remove(pfs_dir, True)


def empty_for_reuse(pfs_dir: Path, mode: int) -> bool:
    """Empty a finished datum's folder for the next datum, keeping it and its input folders.

    A folder made and removed per datum costs more than a trivial datum on a file system that
    frees inodes lazily (ext4 without a journal skips every recently freed inode on each
    allocation). A folder is kept, emptied, only while it is a real folder of this process's
    user with the bits staging gave it (`mode`) and no extended attributes, before and after
    its emptying: the datum folder, its input folders (read-only for user code), and `out`
    (user code's to write, and so to chmod: a changed one fails the checks and is removed).
    False when the folder itself fails those checks: the caller removes it."""
    pfs_dir = Path(pfs_dir)
    if not _pristine(pfs_dir, mode):
        return False
    with os.scandir(pfs_dir) as scan:
        entries = [(Path(entry.path), entry.is_dir(follow_symlinks=False)) for entry in scan]
    for path, is_dir in entries:
        if is_dir and _pristine(path, mode):
            for inner in list(os.scandir(path)):
                _remove(Path(inner.path), inner.is_dir(follow_symlinks=False))
            if _pristine(path, mode):  # removing may have added write bits (see below)
                continue
        _remove(path, is_dir)
    return _pristine(pfs_dir, mode)


def _pristine(path: Path, mode: int) -> bool:
    try:
        info = os.lstat(path)
        return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == mode
                and not os.listxattr(path, follow_symlinks=False))
    except OSError:
        return False


def _remove(path: Path, is_dir: bool) -> None:
    """Delete a file or a whole tree; user code may have left folders without write bits."""
    if not is_dir:
        path.unlink(missing_ok=True)
        return
    shutil.rmtree(path, onerror=_make_writable_and_retry)


def _make_writable_and_retry(func: Callable[[str], object], path: str, _exc_info: object) -> None:
    """rmtree hook: add the owner's write/exec bits to the parent, then retry once."""
    parent = os.path.dirname(path)
    os.chmod(parent, os.stat(parent).st_mode | 0o700)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, os.stat(path).st_mode | 0o700)
    func(path)
