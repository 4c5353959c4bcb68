"""LocalObjectStore: one file per key under a root folder.

Writes go to a temp file in the key's own folder and are moved into place with `os.replace`,
so a reader sees the old body or the new one, never half. Create-only writes `os.link` the temp
file (atomic: the link fails when the key exists); where the file system has O_TMPFILE, that
temp file has no name at all until the link names it (one directory entry made instead of two
made and one removed, and a killed writer leaves nothing behind). compare_and_set takes an
`flock` on a lock file and re-reads the body under it (dulwich's
DiskRefsContainer.set_if_equals). No fsync: a power cut may lose recent writes, which then look
like never-made commits (design: crash safety is bottom-up, so nothing visible points at them).
"""

from __future__ import annotations

import builtins
import errno
import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from storage.errors import InvalidArgument, NotFound, ObjectNotFound
from storage.objects import (
    COPY_CHUNK,
    IncompleteUpload,
    ObjectInfo,
    body_token,
    check_key,
    folder_prefix,
    hidden,
)

# Names starting with this are herd's own (temp files, the lock folder) and never keys.
INTERNAL = ".~herd"
TEMP_PREFIX = f"{INTERNAL}-tmp-"
# What open(O_TMPFILE) raises where the file system or kernel has none: create-only writes then
# name their temp files (EISDIR: kernels older than 3.11 read the flag as O_DIRECTORY).
_NO_TMPFILE = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})


class LocalObjectStore:
    """An ObjectStore in a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()
        self._locks = self.root / f"{INTERNAL}-locks"
        # Whether create-only writes use unnamed temp files: tried at the first one (None: not yet).
        self._unnamed_temp_files: bool | None = None if hasattr(os, "O_TMPFILE") else False

    # -- writes -------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        """Write `data` at `key` atomically (temp file + os.replace)."""
        self._publish(key, lambda out: out.write(data), os.replace)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create `key` with `data` via os.link of a temp file; False when it exists."""
        return self._create(key, lambda out: out.write(data))

    def put_chunks_if_absent(self, key: str, chunks: Iterable[bytes]) -> bool:
        """Create `key` from `chunks` written one at a time to a temp file, then os.link."""
        return self._create(key, lambda out: out.writelines(chunks))

    def _create(self, key: str, write: Callable[[BinaryIO], object]) -> bool:
        """Create-only: an unnamed O_TMPFILE in the key's folder, linked to the key's name
        through /proc/self/fd, else (the first create's probe failed, or this folder refuses
        O_TMPFILE) a named temp file, linked."""
        if self._unnamed_temp_files is None:
            self._unnamed_temp_files = self._unnamed_temp_files_work()
        if not self._unnamed_temp_files:
            return self._publish(key, write, os.link)
        target = self._path(key)
        folder, fd = self._unnamed_temp_file(key, target.parent)
        if fd is None:
            self._unnamed_temp_files = False
            return self._publish(key, write, os.link)
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
                out.flush()
                for attempt in range(3):
                    try:
                        _name_fd(fd, folder, target.name)
                        return True
                    except FileExistsError:
                        return False
                    except FileNotFoundError:
                        # The folder held no name while the file was written, so a delete of
                        # its last key may have pruned it: linkat into a removed folder.
                        if attempt == 2:
                            raise
                        os.close(folder)
                        folder = -1
                        folder = self._open_folder(key, target.parent)
                raise AssertionError("unreachable")
        finally:
            if folder >= 0:
                os.close(folder)

    def _unnamed_temp_files_work(self) -> bool:
        """Try the whole path once in the root: O_TMPFILE (the kernel's and this file system's),
        then a link through /proc/self/fd (no /proc, or a sandbox that refuses it: named temp
        files instead). The probe's name is a temp file's, so a crash here leaves nothing that
        incomplete_uploads and garbage-collect do not clear."""
        probe = f"{TEMP_PREFIX}probe-{uuid.uuid4().hex}"
        root = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o644, dir_fd=root)
            try:
                _name_fd(fd, root, probe)
            finally:
                os.close(fd)
            os.unlink(probe, dir_fd=root)
            return True
        except OSError:
            return False
        finally:
            os.close(root)

    def _unnamed_temp_file(self, key: str, parent: Path) -> tuple[int, int | None]:
        """(the key's folder, an O_TMPFILE in it), or (-1, None) where O_TMPFILE is missing."""
        for attempt in range(3):
            folder = self._open_folder(key, parent)
            try:
                return folder, os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o644, dir_fd=folder)
            except OSError as exc:
                os.close(folder)
                if exc.errno in _NO_TMPFILE:
                    return -1, None
                if exc.errno != errno.ENOENT or attempt == 2:  # ENOENT: pruned since it was opened
                    raise
        raise AssertionError("unreachable")

    def _open_folder(self, key: str, folder: Path) -> int:
        """An fd of the key's folder, made when missing (first key in it, or pruned)."""
        for attempt in range(3):
            try:
                return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:
                if attempt == 2:
                    raise
                self._mkdirs(key, folder)
            except NotADirectoryError:
                raise InvalidArgument(f"object key '{key}' lies under another key in {self.url}") from None
        raise AssertionError("unreachable")

    def put_file(self, key: str, path: Path) -> None:
        """Copy a local file to `key` (sendfile in the kernel, then os.replace)."""
        try:
            source = open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"local file '{path}' not found") from None
        with source:
            self._publish(key, lambda out: _copy_file(source, out), os.replace)

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        """Copy a stream to `key` until EOF, then os.replace."""
        self._publish(key, lambda out: shutil.copyfileobj(stream, out, COPY_CHUNK), os.replace)

    def rename(self, src: str, dst: str) -> None:
        """Move `src` to `dst` (an optional capability BlobStore uses to write bytes once)."""
        source, target = self._path(src), self._path(dst)
        for attempt in range(3):
            try:
                os.replace(source, target)
                break
            except FileNotFoundError:
                if not source.exists():
                    raise ObjectNotFound(src, self.url) from None
                if attempt == 2:
                    raise
                self._mkdirs(dst, target.parent)
        self._prune(source.parent)

    def adopt(self, key: str, fd: int) -> bool:
        """Name the regular file open at `fd` `key`, create-only, by linking the descriptor itself
        (linkat of /proc/self/fd): no byte is copied, no file is made, and the file named is the
        one its caller read through `fd`. False when `key` exists. OSError when it cannot be
        linked (another file system: EXDEV; no /proc): the caller copies instead. An optional
        capability, as `rename` is (BlobStore.adopt_file)."""
        target = self._path(key)
        for attempt in range(3):
            try:
                folder = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:  # the first key in it, or a delete just pruned it
                if attempt == 2:
                    raise
                self._mkdirs(key, target.parent)
                continue
            try:
                _name_fd(fd, folder, target.name)
                return True
            except FileExistsError:
                return False
            finally:
                os.close(folder)
        raise AssertionError("unreachable")

    def _publish(self, key: str, write: Callable[[BinaryIO], object], place: Callable[[Path, Path], None]) -> bool:
        """Write a temp file beside the key, then `place` it (os.replace or os.link)."""
        target = self._path(key)
        fd, tmp = self._temp_file(key, target)
        moved = False
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
            try:
                place(tmp, target)
            except FileExistsError:
                return False
            except IsADirectoryError:
                raise InvalidArgument(f"object key '{key}' is a folder of other keys in {self.url}") from None
            moved = place is os.replace
            return True
        finally:
            if not moved:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass

    def _temp_file(self, key: str, target: Path) -> tuple[int, Path]:
        """Open a new temp file in the key's folder, creating the folder only when it is missing."""
        for attempt in range(3):
            tmp = target.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
            try:
                return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), tmp
            except FileNotFoundError:
                # Missing folder (first key in it, or a delete just pruned it): make it, retry.
                if attempt == 2:
                    raise
                self._mkdirs(key, target.parent)
            except NotADirectoryError:
                raise InvalidArgument(f"object key '{key}' lies under another key in {self.url}") from None
        raise AssertionError("unreachable")

    def _mkdirs(self, key: str, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InvalidArgument(f"object key '{key}' lies under another key in {self.url}") from None

    # -- reads --------------------------------------------------------------------------
    def get(self, key: str) -> bytes:
        """The whole body of `key`; ObjectNotFound when missing."""
        with self._not_found(key):
            return self._path(key).read_bytes()

    def get_file(self, key: str, path: Path) -> None:
        """Copy `key` to a local file via a temp file in the destination folder."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.herd-tmp")
        try:
            with self._not_found(key):
                shutil.copyfile(self._path(key), tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def open(self, key: str) -> BinaryIO:
        """The key's file opened for reading."""
        with self._not_found(key):
            return open(self._path(key), "rb")

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """One pread of the key's file (shorter past its end)."""
        with self._not_found(key):
            fd = os.open(self._path(key), os.O_RDONLY | os.O_CLOEXEC)
        try:
            parts: list[bytes] = []
            while length > 0 and (part := os.pread(fd, length, offset)):
                parts.append(part)
                offset, length = offset + len(part), length - len(part)
            return b"".join(parts)
        finally:
            os.close(fd)

    def exists(self, key: str) -> bool:
        """Whether `key` exists."""
        return self._path(key).is_file()

    def local_path(self, key: str) -> Path | None:
        """The real file of `key`, or None when it is missing."""
        path = self._path(key)
        return path if path.is_file() else None

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The body of `key` and its sha256 token, or None when missing."""
        try:
            data = self.get(key)
        except ObjectNotFound:
            return None
        return data, body_token(data)

    @contextmanager
    def _not_found(self, key: str) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key, self.url) from None

    # -- listing ------------------------------------------------------------------------
    def list(self, prefix: str) -> Iterator[str]:
        """Every key starting with `prefix`, sorted, streamed from an os.scandir walk."""
        return (key for key, _ in self._walk_prefix(prefix))

    def list_with_times(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every key under `prefix`, sorted, with its size and last change (a key deleted meanwhile is skipped)."""
        for key, path in self._walk_prefix(prefix):
            try:
                stat = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield ObjectInfo(key, stat.st_size, _changed(stat))

    def _walk_prefix(self, prefix: str) -> Iterator[tuple[str, str]]:
        folder, _, start = prefix.rpartition("/")
        if folder:
            check_key(folder)
            folder += "/"
        walk = self._walk(os.path.join(self.root, folder), folder, start)
        return ((key, path) for key, path in walk if not hidden(key, prefix))

    def _walk(self, directory: str, key_prefix: str, start: str = "") -> Iterator[tuple[str, str]]:
        for name, is_dir in _sorted_entries(directory, start):
            path = os.path.join(directory, name)
            if is_dir:
                yield from self._walk(path, f"{key_prefix}{name}/")
            else:
                yield key_prefix + name, path

    def incomplete_uploads(self) -> Iterator[IncompleteUpload]:
        """Temp files of writes that never reached os.replace/os.link (a killed writer's)."""
        for directory, folders, files in os.walk(self.root):
            if directory == str(self.root):
                folders[:] = [name for name in folders if name != self._locks.name]
            for name in files:
                if not name.startswith(TEMP_PREFIX):
                    continue
                path = os.path.join(directory, name)
                try:
                    stat = os.stat(path, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # finished (renamed) or removed meanwhile
                relative = os.path.relpath(path, self.root)
                yield IncompleteUpload(
                    key=relative, upload_id=relative, size=stat.st_size,
                    started=_changed(stat),
                )

    def abort_upload(self, upload: IncompleteUpload) -> None:
        """Delete a temp file found by incomplete_uploads (nothing else: the name is checked)."""
        path = (self.root / upload.upload_id).absolute()
        if not path.name.startswith(TEMP_PREFIX) or self.root not in path.parents or ".." in upload.upload_id:
            raise InvalidArgument(f"'{upload.upload_id}' is not a temp file of {self.url}")
        try:
            path.unlink()
        except FileNotFoundError:
            return
        self._prune(path.parent)

    def list_children(self, prefix: str) -> builtins.list[str]:
        """Names one level below the folder `prefix`; a folder counts only if it holds a key."""
        folder = folder_prefix(prefix)
        if folder:
            check_key(folder[:-1])
        names = []
        for name, is_dir in _sorted_entries(self.root / folder, ""):
            if hidden(f"{folder}{name}/" if is_dir else folder + name, folder):
                continue
            if not is_dir:
                names.append(name)
            elif _holds_a_key(self.root / folder / name):
                names.append(name + "/")
        return sorted(names)

    # -- delete and CAS -----------------------------------------------------------------
    def delete(self, key: str) -> None:
        """Remove `key` and any folders it leaves empty; a missing key is fine."""
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return
        self._prune(path.parent)

    def _prune(self, folder: Path) -> None:
        """rmdir empty folders up to the root, so listings never show folders without keys."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def compare_and_set(self, key: str, token: str | None, data: bytes) -> bool:
        """Write iff the body's sha256 is `token` (None = create-only), re-read under a lock."""
        if token is None:
            return self.put_if_absent(key, data)
        with self._lock(key):
            current = self.read_versioned(key)
            if current is None or current[1] != token:
                return False
            self.put(key, data)
            return True

    @contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        """An exclusive flock per key; flock (not lockf) also excludes threads of this process."""
        self._locks.mkdir(exist_ok=True)
        lock_path = self._locks / hashlib.sha256(key.encode()).hexdigest()
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _path(self, key: str) -> Path:
        check_key(key)
        if any(part.startswith(INTERNAL) for part in key.split("/")):
            raise InvalidArgument(f"invalid object key '{key}': '{INTERNAL}' names are reserved")
        return self.root / key

    def __repr__(self) -> str:
        return f"LocalObjectStore({self.url!r})"


def _name_fd(fd: int, folder: int, name: str) -> None:
    """Link the file open at `fd` as `name` in the folder open at `folder` (FileExistsError when
    that name exists). A dst_dir_fd makes os.link call linkat with AT_SYMLINK_FOLLOW: the file,
    not /proc's link to it."""
    os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=folder, follow_symlinks=True)


def _changed(stat: os.stat_result) -> datetime:
    """When a file last changed: max(mtime, ctime), since a rename or link keeps the old mtime
    but sets ctime (garbage collection must see a blob moved into place as young)."""
    return datetime.fromtimestamp(max(stat.st_mtime, stat.st_ctime), timezone.utc)


def _copy_file(source: BinaryIO, out: BinaryIO) -> None:
    """Kernel-side copy (sendfile) between two files; plain reads where sendfile is refused."""
    offset = 0
    try:
        while sent := os.sendfile(out.fileno(), source.fileno(), offset, 1 << 30):
            offset += sent
    except OSError as exc:
        if offset or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
        shutil.copyfileobj(source, out, COPY_CHUNK)


def _holds_a_key(directory: Path | str) -> bool:
    """Whether a folder holds any key at any depth; stops at the first one (no sorting)."""
    try:
        with os.scandir(directory) as scan:
            for entry in scan:
                if entry.name.startswith(INTERNAL):
                    continue
                if not entry.is_dir(follow_symlinks=False) or _holds_a_key(entry.path):
                    return True
    except (FileNotFoundError, NotADirectoryError):
        pass
    return False


def _sorted_entries(directory: Path | str, start: str) -> list[tuple[str, bool]]:
    """(name, is_dir) in the folder, sorted as their keys sort (a folder as `name/`)."""
    try:
        with os.scandir(directory) as scan:
            entries = [
                (entry.name, entry.is_dir(follow_symlinks=False))
                for entry in scan
                if entry.name.startswith(start) and not entry.name.startswith(INTERNAL)
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:  # pragma: no cover - permissions
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise InvalidArgument(f"cannot read folder '{directory}': {exc.strerror}") from None
        raise
    entries.sort(key=lambda item: item[0] + "/" if item[1] else item[0])
    return entries
