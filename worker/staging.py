"""Lay out one datum's inputs as user code must see `/pfs`, and empty that folder again.

`<pfs_dir>/<input name>/<original path>` for every file of every input, plus an empty
`<pfs_dir>/out`. A one-chunk file whose blob is a real local file is hard-linked (no bytes
move); that is safe only because runtimes mount inputs read-only, so a caller staging for a
runtime without read-only inputs passes `link=False`.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol

from storage.blobs import BlobStore
from storage.errors import InvalidPath
from storage.model import FileEntry
from storage.paths import normalize_path, validate_name

OUT = "out"
COPY_CHUNK = 1024 * 1024


class DatumInputFiles(Protocol):
    """What staging needs of one input of a datum (scheduler.records.PlannedInput fits)."""

    @property
    def name(self) -> str: ...

    @property
    def files(self) -> Mapping[str, FileEntry]: ...

    @property
    def empty_files(self) -> bool: ...


def stage_datum(
    blobs: BlobStore, datum_inputs: Iterable[DatumInputFiles], pfs_dir: Path, *, link: bool = True
) -> int:
    """Lay out every input file under `pfs_dir` and an empty `out/`.

    Args:
        blobs: where the chunks of each file are read from.
        datum_inputs: the datum's inputs (name, files by original path, empty_files flag).
        pfs_dir: the host folder shown to user code as `/pfs`; created when missing.
        link: hard-link one-chunk local blobs instead of copying them.
    Returns:
        The number of bytes staged (0 for files staged empty).
    Raises:
        InvalidPath: an input name or file path would land outside its folder or clash.
    """
    pfs_dir = Path(pfs_dir)
    (pfs_dir / OUT).mkdir(parents=True, exist_ok=True)
    staged = 0
    seen: set[str] = set()
    for item in datum_inputs:
        root = _input_root(pfs_dir, item.name, seen)
        for path, entry in sorted(item.files.items()):
            target = safe_join(root, path)
            staged += _stage_file(blobs, entry, target, empty=item.empty_files, link=link)
    return staged


def _input_root(pfs_dir: Path, name: str, seen: set[str]) -> Path:
    """The folder of one input, after checking its name cannot escape or shadow `out`."""
    validate_name(name, "input")
    if name == OUT or name in seen:
        why = "is reserved for /pfs/out" if name == OUT else "is used by two inputs of the datum"
        raise InvalidPath(f"input name '{name}' {why}")
    seen.add(name)
    root = pfs_dir / name
    root.mkdir(exist_ok=True)
    return root


def safe_join(root: Path, path: str) -> Path:
    """`root` joined with a manifest path; InvalidPath when it would leave `root`."""
    normal = normalize_path(path)  # refuses '..', NUL, empty segments, over-long paths
    target = Path(os.path.normpath(os.path.join(root, normal.lstrip("/"))))
    if target == root or root not in target.parents:
        raise InvalidPath(f"path '{path}' escapes the datum folder")
    return target


def _stage_file(blobs: BlobStore, entry: FileEntry, target: Path, *, empty: bool, link: bool) -> int:
    """Write one file (link, download or concatenation); returns the bytes staged."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if empty:
            target.touch(exist_ok=False)
            return 0
        if len(entry.chunks) == 1:
            _stage_one_chunk(blobs, entry.chunks[0], target, link=link)
        else:
            _concatenate(blobs, entry.chunks, target)
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise InvalidPath(f"path '{target}' is both a file and a directory in the datum") from None
    return entry.size


def _stage_one_chunk(blobs: BlobStore, chunk: str, target: Path, *, link: bool) -> None:
    """Hard-link a local blob when allowed, else copy it, else download it."""
    local = blobs.local_path(chunk)
    if local is None:
        if target.exists():
            raise FileExistsError(target)
        blobs.get_file(chunk, target)
        return
    if link:
        try:
            os.link(local, target)
            return
        except OSError as exc:
            # EXDEV: another filesystem; EPERM/EMLINK: protected_hardlinks or too many links.
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
    _copy_new(local, target)


def _copy_new(source: Path, target: Path) -> None:
    """Copy into a file that must not exist yet (kernel-side where possible)."""
    with open(source, "rb") as src, open(target, "xb") as dst:
        shutil.copyfileobj(src, dst, COPY_CHUNK)


def _concatenate(blobs: BlobStore, chunks: tuple[str, ...], target: Path) -> None:
    """Stream every chunk, in order, into one new file."""
    with open(target, "xb") as dst:
        for chunk in chunks:
            with blobs.open(chunk) as src:
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
    """Empty `pfs_dir` for the next datum, keeping `pfs_dir` and `pfs_dir/out` themselves.

    Both folders keep their inode so a warm sandbox with bind mounts of them stays valid.
    """
    pfs_dir = Path(pfs_dir)
    if not pfs_dir.is_dir():
        return
    with os.scandir(pfs_dir) as entries:
        for entry in entries:
            if entry.name == OUT and entry.is_dir(follow_symlinks=False):
                _empty_folder(Path(entry.path))
            else:
                _remove(Path(entry.path), entry.is_dir(follow_symlinks=False))


def _empty_folder(folder: Path) -> None:
    with os.scandir(folder) as entries:
        for entry in entries:
            _remove(Path(entry.path), entry.is_dir(follow_symlinks=False))


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
