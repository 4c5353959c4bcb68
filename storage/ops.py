"""Operations of an open commit and their replay: pure, so replay order, clash detection and
the no-op deletes are tested without an object store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

from storage.errors import FileNotFound, InvalidPath
from storage.model import Commit, FileEntry, Manifest, Record
from storage.paths import clash_message, dir_prefix, find_clash, node_type

# A placeholder entry for checking an op before its bytes are uploaded.
PLACEHOLDER = FileEntry(chunks=(), size=0)


class FileOp(Record):
    """One change recorded in an open commit, replayed in order at finish."""

    op: Literal["put", "append", "delete"]
    path: str
    entry: FileEntry | None = None


class OpenCommit(Record):
    """The mutable record of an open commit at `repos/<repo>/open/<id>` (CAS-updated)."""

    commit: Commit
    changes: tuple[FileOp, ...] = ()
    fixed_parent: bool = False  # started with an explicit parent: replay on it, not on the head
    sealed: bool = False  # finish has begun: no more changes are accepted
    finished: datetime | None = None  # fixed at seal, so every finisher writes the same record
    # Branches set to this open commit besides its own (set-branch, create-branch --head, as
    # 1.4's SetBranch): finishing moves each one still claiming it to the landed commit.
    followers: tuple[str, ...] = ()
    generation: int = 0
    writer: str = ""


def apply_ops(
    manifest: Manifest,
    ops: Iterable[FileOp],
    strict: tuple[str, str] | None = None,
    check: bool = True,
) -> Manifest:
    """Replay `ops` on `manifest`; `strict=(repo, commit)` makes deleting a missing path an error.

    Raises InvalidPath when (`check`) the result holds a path that is both a file and a directory.
    """
    files = dict(manifest.files)
    for op in ops:
        _apply_one(files, op, strict)
    clash = find_clash(files) if check else None
    if clash is not None:
        raise InvalidPath(clash_message(clash))
    return Manifest(files=files)


def _apply_one(files: dict[str, FileEntry], op: FileOp, strict: tuple[str, str] | None) -> None:
    if op.op == "delete":
        _delete(files, op.path, strict)
        return
    assert op.entry is not None, "put/append ops carry an entry"
    old = files.get(op.path)
    files[op.path] = old.appended(op.entry) if op.op == "append" and old else op.entry


def effective_ops(manifest: Manifest, ops: Sequence[FileOp]) -> list[FileOp]:
    """`ops` without the deletes that find nothing (a no-op in an open commit, as in Pachyderm 1.x).

    Dropped rather than recorded: replayed at finish on a newer head, a recorded delete of a
    path that was absent here would remove a file someone else added meanwhile.
    """
    if not any(op.op == "delete" for op in ops):
        return list(ops)
    files = dict(manifest.files)
    kept: list[FileOp] = []
    for op in ops:
        if op.op == "delete" and node_type(files, op.path) is None:
            continue
        kept.append(op)
        _apply_one(files, op, None)
    return kept


def _delete(files: dict[str, FileEntry], path: str, strict: tuple[str, str] | None) -> None:
    """Delete a file, or a whole directory; missing is an error only when strict."""
    if path in files:
        del files[path]
        return
    prefix = dir_prefix(path)
    below = [name for name in files if name.startswith(prefix)]
    if not below and strict is not None:
        raise FileNotFound(strict[0], strict[1], path)
    for name in below:
        del files[name]
