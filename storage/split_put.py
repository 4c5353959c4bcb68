"""`put-file --split`: stream sources into chunk files and record them in one commit.

The chunk names depend on what the target path already holds (numbering continues with
--append), so they are chosen on the manifest the commit is built on (inside the branch CAS
loop), not on an earlier read; in an open commit, on what it holds when the chunks are stored
(two puts racing into one split directory of one open commit may pick the same names). A JSON source is parsed through once before any chunk is stored
(spooled to a temp file on disk when it cannot seek back), so one that does not parse leaves
the store unchanged; lines always split.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from itertools import groupby
from typing import BinaryIO

from storage.blobs import CHUNK
from storage.branches import read_branch
from storage.errors import CommitFinished, InvalidArgument
from storage.files import Files
from storage.model import Commit, FileEntry, Manifest
from storage.ops import PLACEHOLDER, FileOp, apply_ops
from storage.paths import dir_prefix, node_type, normalize_path
from storage.refnames import write_target
from storage.split import SplitMode, chunk_name, next_index, split_stream
from storage.streams import ChunkStream


def _blocks(stream: BinaryIO) -> Iterator[bytes]:
    while block := stream.read(CHUNK):
        yield block


def upload_chunks(
    files: Files, stream: BinaryIO, mode: SplitMode, target_datums: int, target_bytes: int, source: str
) -> list[FileEntry]:
    """Every chunk of `stream` as a stored blob, in order (each streamed, never held whole)."""
    entries: list[FileEntry] = []
    pieces = split_stream(_blocks(stream), mode, target_datums, target_bytes, source)
    for _, group in groupby(pieces, key=lambda item: item[0]):
        digest, size = files.blobs.put_stream(ChunkStream(piece for _, piece in group))  # type: ignore[arg-type]
        entries.append(FileEntry(chunks=(digest,), size=size))
    return entries


def split_ops(view: Manifest, uploads: Sequence[tuple[str, list[FileEntry]]], append: bool) -> list[FileOp]:
    """The ops that put each upload's chunks below its path (pure).

    With `append` the numbering continues after the highest chunk there; without it an existing
    file or directory at the path is replaced (herd's put-file overwrites by default) and the
    numbering starts at 0. Several uploads to one path continue each other's numbering."""
    files = dict(view.files)
    ops: list[FileOp] = []
    replaced: set[str] = set()
    for path, entries in uploads:
        if not append and path not in replaced and node_type(files, path) is not None:
            delete = FileOp(op="delete", path=path)
            files = dict(apply_ops(Manifest(files=files), [delete], check=False).files)
            ops.append(delete)
        replaced.add(path)
        first = next_index(files, path)
        step = [FileOp(op="put", path=dir_prefix(path) + chunk_name(first + i), entry=entry)
                for i, entry in enumerate(entries)]
        files = dict(apply_ops(Manifest(files=files), step).files)  # InvalidPath on a clash
        ops += step
    return ops


def put_split(
    files: Files,
    repo: str,
    ref: str,
    items: Sequence[tuple[str, BinaryIO, str]],
    mode: SplitMode,
    target_datums: int = 0,
    target_bytes: int = 0,
    append: bool = False,
) -> Commit:
    """Split each (path, stream, source name) into chunk files below path, all in ONE commit
    (or one update of the open commit). Nothing is recorded unless every source splits."""
    if not items:
        raise InvalidArgument(f"no files given to put into repo '{repo}'")
    paths = [normalize_path(path) for path, _, _ in items]
    target = write_target(files.commits, repo, ref)
    # Refuse a path that cannot take chunks before reading a byte (checked again on commit).
    split_ops(_view(files, repo, target.kind, target.name), [(p, [PLACEHOLDER]) for p in paths], append)
    with ExitStack() as spooled:
        streams = [stream for _, stream, _ in items]
        if mode == "json":  # JSON can fail to parse: read it all once before storing a byte
            streams = [_rewindable(stream, spooled) for stream in streams]
            for stream, (_, _, source) in zip(streams, items):
                start = stream.tell()
                for _ in split_stream(_blocks(stream), mode, target_datums, target_bytes, source):
                    pass
                stream.seek(start)
        uploads = [(path, upload_chunks(files, stream, mode, target_datums, target_bytes, source))
                   for path, stream, (_, _, source) in zip(paths, streams, items)]
    if target.kind == "open":
        ops = split_ops(_view(files, repo, "open", target.name), uploads, append)
        return files.commits.add_ops(repo, target.name, ops)

    def build(base: Manifest) -> Manifest:
        return apply_ops(base, split_ops(base, uploads, append), strict=(repo, target.name))

    return files.commits.commit_on_branch(repo, target.name, build)


def _rewindable(stream: BinaryIO, spooled: ExitStack) -> BinaryIO:
    """The stream itself when it can seek back, else a temp file (on disk) holding its bytes."""
    if isinstance(stream, io.IOBase) and stream.seekable():
        return stream
    copy = spooled.enter_context(tempfile.TemporaryFile())
    shutil.copyfileobj(stream, copy, CHUNK)
    copy.seek(0)
    return copy


def _view(files: Files, repo: str, kind: str, name: str) -> Manifest:
    """What the target holds now: the branch head, or the open commit as if finished now."""
    commits = files.commits
    if kind == "branch":
        branch = read_branch(commits.objects, repo, name)
        return commits.manifest_at(repo, branch.head if branch else None)
    pending = commits.read_open(repo, name)
    if pending is None or pending.sealed:
        raise CommitFinished(repo, name)
    commit = pending.commit
    branch = read_branch(commits.objects, repo, commit.branch or "master")
    base = commit.parent if pending.fixed_parent or branch is None else branch.head
    return apply_ops(commits.manifest_at(repo, base), pending.changes, check=False)
