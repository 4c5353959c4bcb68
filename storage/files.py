"""File operations of the porcelain: put, delete, read, list, inspect and diff files.

A write goes to an open commit when the ref is one (or is a branch with one open), else it
makes a commit by itself. Every input is checked, and the result's tree is checked for
file/directory clashes with placeholder entries, before any byte is uploaded.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, Union, cast

from storage.blobs import CHUNK, PACKED_CHUNK_MAX, BlobStore, new_temp_file, read_up_to
from storage.branches import read_branch
from storage.collector import collector_paused
from storage.commits import Commits
from storage.errors import (
    CommitFinished,
    CommitNotFound,
    DataCorrupted,
    FileNotFound,
    HerdError,
    InvalidArgument,
    InvalidPath,
    ObjectNotFound,
)
from storage.model import Commit, FileDiff, FileEntry, FileInfo, Manifest
from storage.ops import PLACEHOLDER, FileOp, apply_ops, effective_ops
from storage.packs import PACK_MIN_CHUNKS, PackWriter
from storage.paths import ROOT, dir_prefix, normalize_dir, normalize_path, printable
from storage.refnames import Target, resolve, write_target
from storage.streams import ChunkStream, PassThrough
from storage.trees import diff_manifests, list_nodes, node_info

if TYPE_CHECKING:
    from _typeshed import SupportsWrite  # a stream destination only needs write(bytes)

Source = Union[Path, bytes, bytearray, memoryview, BinaryIO]
UPLOAD_THREADS = 8
MANY_FILES = 1_000  # put_files of this many pauses the cyclic collector (storage/collector.py)


def _small_body(source: Source) -> tuple[bytes | None, Source]:
    """(the bytes, source) of a source of at most PACKED_CHUNK_MAX bytes, else (None, what to
    upload instead): a stream's bytes read to decide go first in a stream that replays them."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return (bytes(source) if len(source) <= PACKED_CHUNK_MAX else None), source
    if isinstance(source, Path):
        fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            if size > PACKED_CHUNK_MAX:
                return None, source
            # One read, one byte more than the size: a short read is the end of a regular file.
            # To its end even if it grew since the stat (PackWriter.add stores a big one loose).
            data = os.read(fd, size + 1)
            if len(data) <= size:
                return data, source
            parts = [data]
            while block := os.read(fd, CHUNK):
                parts.append(block)
            return b"".join(parts), source
        finally:
            os.close(fd)
    head = read_up_to(source, PACKED_CHUNK_MAX + 1)
    if len(head) <= PACKED_CHUNK_MAX:
        return head, source
    return None, cast(BinaryIO, PassThrough(source, head=head, block=CHUNK, owns=False))


def check_source(source: object) -> None:
    """Refuse a source that is not bytes, an existing regular file, or a readable stream."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return
    if isinstance(source, (str, os.PathLike)):
        if not isinstance(source, Path):
            raise InvalidArgument(f"source '{source}' must be a Path, bytes or a binary stream")
        if not source.is_file():
            raise InvalidArgument(f"source file '{source}' does not exist or is not a file")
        return
    if not callable(getattr(source, "read", None)):
        raise InvalidArgument(f"source {source!r} must be a Path, bytes or a binary stream")


@dataclass(frozen=True)
class Where:
    """Which file of which commit a read is for: the context of a DataCorrupted message."""

    repo: str
    commit: str
    path: str


def damaged(where: Where, digest: str, exc: HerdError) -> DataCorrupted:
    """A blob-level error (corrupt or missing) as one line naming repo, commit, path and blob."""
    if isinstance(exc, DataCorrupted):
        why = exc.message
    else:  # ObjectNotFound: a manifest names a blob the store does not hold
        why = f"blob '{digest}' is missing ({exc.message})"
    error = DataCorrupted(
        f"file '{printable(where.path)}' in repo '{where.repo}' at commit '{where.commit}' is "
        f"damaged: {why}; run 'herd fsck {where.repo}'"
    )
    error.repo, error.commit, error.path, error.blob = (  # type: ignore[attr-defined]
        where.repo, where.commit, where.path, digest,
    )
    return error


@contextmanager
def _reading(where: Where | None, digest: str) -> Iterator[None]:
    """Add repo/commit/path to errors of reading one chunk blob."""
    try:
        yield
    except (DataCorrupted, ObjectNotFound) as exc:
        if where is None:
            raise
        raise damaged(where, digest, exc) from None


def _chunk_blocks(blobs: BlobStore, entry: FileEntry, where: Where | None) -> Iterator[bytes]:
    """A file's bytes: its chunks one after another (loose blobs or slices of packs), each
    opened only when reached.

    Every chunk is verified as it streams (BlobStore.open_chunk): a damaged one raises
    DataCorrupted naming `where` before its last block is handed out.
    """
    with _reading(where, entry.hash):
        slices = entry.slices()
    for digest, lies in slices:
        with _reading(where, digest):
            blob = blobs.open_chunk(digest, lies)
        with blob:
            while True:
                with _reading(where, digest):
                    block = blob.read(CHUNK)
                if not block:
                    break
                yield block


def _chunk_reader(blobs: BlobStore, entry: FileEntry, where: Where | None = None) -> ChunkStream:
    return ChunkStream(_chunk_blocks(blobs, entry, where))


def local_parts(name: str, relative: str, root: Path) -> list[str]:
    """The segments of where a manifest path lands below `root`; InvalidPath when it would land
    anywhere else (a crafted manifest may hold '/../../x', '.', empty segments or NUL)."""
    parts = relative.split("/")
    bad = any(part in ("", ".", "..") or "\x00" in part for part in parts)
    try:
        normal = normalize_path(name)
    except InvalidPath:
        normal = None
    if bad or normal != name:
        raise InvalidPath(f"refusing to write manifest path {name!r}: it would land outside '{root}'")
    return parts


def not_followed(root: Path, parts: Sequence[str], path: str, repo: str) -> InvalidPath:
    local = root.joinpath(*parts)
    return InvalidPath(
        f"refusing to write '{printable(path)}' of repo '{repo}': "
        f"'{printable(str(local))}' is a symlink or not a "
        "regular file/folder, and herd never writes through a link it did not create"
    )


def folder_below(root_fd: int, root: Path, parts: Sequence[str], path: str, repo: str) -> int:
    """The fd of root/parts[:-1], its folders made as needed and opened without following a
    symlink, with parts[-1] absent or a regular file: where get-file -r (local or through a
    server) may write the file `path` of `repo`; InvalidPath naming the link otherwise. The
    caller closes the fd unless it is root_fd."""
    folder_fd = root_fd
    try:
        for depth, part in enumerate(parts[:-1]):
            try:
                os.mkdir(part, dir_fd=folder_fd)
            except FileExistsError:
                pass
            try:
                opened = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder_fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                raise not_followed(root, parts[: depth + 1], path, repo) from None
            if folder_fd != root_fd:
                os.close(folder_fd)
            folder_fd = opened
        try:
            found = os.stat(parts[-1], dir_fd=folder_fd, follow_symlinks=False)
        except FileNotFoundError:
            found = None
        if found is not None and not stat.S_ISREG(found.st_mode):
            raise not_followed(root, parts, path, repo)
        return folder_fd
    except BaseException:
        if folder_fd != root_fd:
            os.close(folder_fd)
        raise


class Files:
    """File-level operations over Commits and a BlobStore."""

    def __init__(self, commits: Commits) -> None:
        self.commits = commits
        self.blobs = BlobStore(commits.objects)

    # ---- writing -------------------------------------------------------------------------

    def _check(self, repo: str, target: Target, ops: Sequence[FileOp]) -> None:
        """Dry-run ops on what the target holds now: clashes and missing deletes fail here."""
        if target.kind == "open":
            pending = self.commits.read_open(repo, target.name)
            if pending is None or pending.sealed:
                raise CommitFinished(repo, target.name)
            self.commits.check_ops(pending, ops)
            return
        head = self._head(repo, target)
        apply_ops(self.commits.manifest_at(repo, head), ops, strict=(repo, head or target.name))

    def _apply(self, repo: str, target: Target, ops: Sequence[FileOp]) -> Commit:
        if target.kind == "open":
            return self.commits.add_ops(repo, target.name, ops)

        def build(base: Manifest) -> Manifest:
            return apply_ops(base, ops, strict=(repo, target.name))

        return self.commits.commit_on_branch(repo, target.name, build)

    def upload(self, source: Source) -> FileEntry:
        """Store a source's bytes as one chunk blob."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            digest, size = self.blobs.put_bytes(bytes(source))
        elif isinstance(source, Path):
            digest, size = self.blobs.put_file(source)
        else:
            digest, size = self.blobs.put_stream(source)
        return FileEntry(chunks=(digest,), size=size)

    def put_files(
        self, repo: str, ref: str, items: Iterable[tuple[str, Source]], append: bool = False
    ) -> Commit:
        """Put many files in ONE commit (or one open-commit update); returns that commit."""
        items = list(items)
        # Each file makes a path, two ops and an entry, none in a cycle: with the collector on,
        # its passes over them were a fifth of put-file -r of 100,000 small files.
        with collector_paused(len(items) >= MANY_FILES):
            return self._put_files(repo, ref, items, append)

    def _put_files(self, repo: str, ref: str, items: list[tuple[str, Source]], append: bool) -> Commit:
        pairs = [(normalize_path(path), source) for path, source in items]
        if not pairs:
            raise InvalidArgument(f"no files given to put into repo '{repo}'")
        for _, source in pairs:
            check_source(source)
        target = write_target(self.commits, repo, ref)
        kind: Literal["put", "append"] = "append" if append else "put"
        self._check(repo, target, [FileOp(op=kind, path=p, entry=PLACEHOLDER) for p, _ in pairs])
        entries = self._upload_all([source for _, source in pairs])
        ops = [FileOp(op=kind, path=p, entry=e) for (p, _), e in zip(pairs, entries)]
        return self._apply(repo, target, ops)

    def _upload_all(self, sources: list[Source]) -> list[FileEntry]:
        """One entry per source, in order. Many sources: the small ones are packed together
        (storage.packs) while the others are stored as loose blobs on a few threads."""
        if len(sources) < PACK_MIN_CHUNKS:
            if len(sources) == 1:
                return [self.upload(sources[0])]
            with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
                return list(pool.map(self.upload, sources))
        writer = PackWriter(self.commits.objects)
        slots: list[int | Future[FileEntry]] = []  # per source: its chunk's place in the writer, or its upload
        with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
            for source in sources:
                body, rest = _small_body(source)
                slots.append(writer.add(body) if body is not None else pool.submit(self.upload, rest))
            packed = writer.close()
            return [packed[slot] if isinstance(slot, int) else slot.result() for slot in slots]

    def copy_file(
        self, src_repo: str, src_ref: str, src_path: str,
        dst_repo: str, dst_ref: str, dst_path: str, overwrite: bool = False,
    ) -> Commit:
        """Copy a file, or a directory's files, to `dst_path` in a branch or open commit.

        As pachctl 1.x's copy-file: any repo to any repo; the source may be an open commit;
        without `overwrite` each copied file is appended to what is there (put-file's default),
        with it the destination path is deleted first. Entries are copied, not bytes: the
        blobs are shared. FileNotFound naming the source path when nothing is there.
        """
        src_repo_commit, manifest = self.snapshot(src_repo, src_ref)
        source = self._info(src_repo, src_repo_commit, manifest, src_path)
        dest = normalize_dir(dst_path)
        if source.type == "file":
            pairs = [(dest, manifest.files[source.path])]
        else:
            prefix = dir_prefix(source.path)
            pairs = [(dest.rstrip("/") + "/" + name[len(prefix):], entry)
                     for name, entry in sorted(manifest.files.items()) if name.startswith(prefix)]
        if not pairs:  # an empty root: nothing to copy
            raise FileNotFound(src_repo, src_repo_commit.id, source.path)
        ops = [FileOp(op="delete", path=dest)] if overwrite and dest != ROOT else []
        ops += [FileOp(op="put" if overwrite else "append", path=normalize_path(path), entry=entry)
                for path, entry in pairs]
        target = write_target(self.commits, dst_repo, dst_ref)
        if target.kind == "branch":
            ops = effective_ops(self.commits.manifest_at(dst_repo, self._head(dst_repo, target)), ops)
        self._check(dst_repo, target, ops)
        return self._apply(dst_repo, target, ops)

    def _head(self, repo: str, target: Target) -> str | None:
        """A branch target's head, for a dry run: as write_target read it, else read now."""
        if target.read:
            return target.head
        branch = read_branch(self.commits.objects, repo, target.name)
        return branch.head if branch else None

    def delete_file(self, repo: str, ref: str, path: str) -> Commit:
        """Delete a file or a whole directory; FileNotFound when nothing is there."""
        normal = normalize_dir(path)
        if normal == ROOT:
            raise InvalidArgument(f"refusing to delete the root directory of repo '{repo}'")
        target = write_target(self.commits, repo, ref)
        ops = [FileOp(op="delete", path=normal)]
        self._check(repo, target, ops)
        return self._apply(repo, target, ops)

    # ---- reading -------------------------------------------------------------------------

    def snapshot(self, repo: str, ref: str) -> tuple[Commit, Manifest]:
        """A commit and its tree: an open one's as it would be if finished now (1.9 reads them)."""
        commit = resolve(self.commits, repo, ref)
        return commit, self.commits.view_manifest(commit)

    def entry(self, repo: str, ref: str, path: str) -> tuple[Commit, FileEntry]:
        """The FileEntry of a file; FileNotFound (or InvalidArgument for a directory)."""
        normal = normalize_path(path)
        commit, manifest = self.snapshot(repo, ref)
        found = manifest.files.get(normal)
        if found is None:
            if node_info(manifest, normal, commit.id) is not None:
                raise InvalidArgument(f"'{normal}' in repo '{repo}' is a directory, not a file")
            raise FileNotFound(repo, commit.id, normal)
        return commit, found

    def open_file(self, repo: str, ref: str, path: str) -> BinaryIO:
        """A verified streaming reader over a file's bytes (DataCorrupted on damage)."""
        commit, found = self.entry(repo, ref, path)
        where = Where(repo, commit.id, normalize_path(path))
        return io.BufferedReader(_chunk_reader(self.blobs, found, where))

    def get_file(
        self,
        repo: str,
        ref: str,
        path: str,
        dest: Path | SupportsWrite[bytes],
        recursive: bool = False,
        progress: Callable[[int], object] | None = None,
    ) -> None:
        """Write a file to `dest` (a path or stream); a directory needs recursive and a path.

        Every byte is verified against its blob id while it moves. A path gets a temp file
        renamed into place only after the check, so damage leaves no file; a stream has had
        the blocks before the damaged blob's last one when DataCorrupted is raised. Recursive:
        every manifest path must land inside `dest` (checked for all files before the first is
        written), and no symlink below `dest` is followed, at a folder or at the file's own
        name (InvalidPath naming it; files written before it stay). Files are written in path
        order, each verified before it is renamed into place. `progress(n)` is told the bytes
        of each file written.
        """
        commit, manifest = self.snapshot(repo, ref)
        info = self._info(repo, commit, manifest, path)
        if info.type == "file":
            self._write(manifest.files[info.path], dest, Where(repo, commit.id, info.path))
            if progress is not None:
                progress(manifest.files[info.path].size)
            return
        if not recursive or not isinstance(dest, Path):
            raise InvalidArgument(
                f"'{info.path}' in repo '{repo}' is a directory: use recursive with a local folder"
            )
        prefix = dir_prefix(info.path)
        items = [
            (Where(repo, commit.id, name), local_parts(name, name[len(prefix):], dest), found)
            for name, found in sorted(manifest.files.items())
            if name.startswith(prefix)
        ]
        dest.mkdir(parents=True, exist_ok=True)  # DIR itself is the caller's: it may be a link
        root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for where, parts, found in items:
                self._write_below(root_fd, dest, parts, found, where)
                if progress is not None:
                    progress(found.size)
        finally:
            os.close(root_fd)

    def _write(self, found: FileEntry, dest: Path | SupportsWrite[bytes], where: Where) -> None:
        if not isinstance(dest, Path):
            with io.BufferedReader(_chunk_reader(self.blobs, found, where)) as reader:
                while block := reader.read(1024 * 1024):
                    dest.write(block)
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = new_temp_file(dest.parent, dest.name)
        self._fill_and_place(handle, found, where, lambda: os.replace(tmp, dest), lambda: os.unlink(tmp))

    def _fill_and_place(
        self, handle: int, found: FileEntry, where: Where,
        place: Callable[[], object], drop: Callable[[], object],
    ) -> None:
        """Write every chunk, verified, into a temp file; `place` it only when all checked out."""
        try:
            with os.fdopen(handle, "wb") as out:
                with _reading(where, found.hash):
                    slices = found.slices()
                for digest, lies in slices:
                    with _reading(where, digest):
                        self.blobs.write_chunk_to(digest, lies, out)
            place()
        except BaseException:
            drop()
            raise

    def _write_below(
        self, root_fd: int, root: Path, parts: list[str], found: FileEntry, where: Where
    ) -> None:
        """Write one file at root/parts without following any symlink below root."""
        folder_fd = folder_below(root_fd, root, parts, where.path, where.repo)
        try:
            name = parts[-1]
            handle, tmp = new_temp_file(root, name, dir_fd=folder_fd)
            self._fill_and_place(
                handle, found, where,
                lambda: os.replace(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd),
                lambda: os.unlink(tmp, dir_fd=folder_fd),
            )
        finally:
            if folder_fd != root_fd:
                os.close(folder_fd)

    def _info(self, repo: str, commit: Commit, manifest: Manifest, path: str) -> FileInfo:
        normal = normalize_dir(path)
        info = node_info(manifest, normal, commit.id)
        if info is None:
            raise FileNotFound(repo, commit.id, normal)
        return info

    def inspect_file(self, repo: str, ref: str, path: str) -> FileInfo:
        """FileInfo of a file or directory."""
        commit, manifest = self.snapshot(repo, ref)
        return self._info(repo, commit, manifest, path)

    def list_file(self, repo: str, ref: str, path: str = ROOT) -> list[FileInfo]:
        """Entries directly below a directory, or the file itself."""
        commit, manifest = self.snapshot(repo, ref)
        info = self._info(repo, commit, manifest, path)
        if info.type == "file":
            return [info]
        return list_nodes(manifest, info.path, commit.id)

    def diff_file(
        self, repo: str, ref: str, old_ref: str | None = None, path: str = ROOT
    ) -> FileDiff:
        """Files added, modified and deleted since `old_ref` (default: the parent commit)."""
        normal = normalize_dir(path)
        commit, manifest = self.snapshot(repo, ref)
        if old_ref is not None:
            old = self.snapshot(repo, old_ref)[1]
        else:
            old = self.commits.manifest_at(repo, commit.parent)
        return diff_manifests(old, manifest, normal)
