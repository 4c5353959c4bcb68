"""Pure pieces of the porcelain: open-commit records, replaying file ops, ref syntax, tree views.

Nothing here does I/O, so every rule (replay order, clash detection, `^`/`~N` parsing, what
`list_file` shows for implicit directories) is tested without an object store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from storage.errors import FileNotFound, InvalidArgument, InvalidPath
from storage.model import Commit, FileDiff, FileEntry, FileInfo, Manifest, Record, digest_fields
from storage.paths import ROOT, clash_message, dir_prefix, find_clash, node_type

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


# ---- ref syntax: NAME, NAME^, NAME^N, NAME~N, NAME^^, NAME.N ----------------------------

# `\Z`, not `$`: `$` also matches before a trailing newline, so 'master\n' would name master.
_REF_RE = re.compile(r"^(?P<base>[A-Za-z0-9_-]+)(?P<suffix>[\^~0-9]*)(?:\.(?P<nth>[0-9]+))?\Z")
_STEP_RE = re.compile(r"([\^~])([0-9]*)")
HEX_RE = re.compile(r"^[0-9a-f]+\Z")


@dataclass(frozen=True)
class ParsedRef:
    """A ref split into its base (branch or commit id), steps back, and optional N-th commit."""

    base: str
    back: int = 0
    nth: int | None = None


def parse_ref(ref: object) -> ParsedRef:
    """Parse `B`, `B^`, `B^N`, `B~N`, `B^^` (= `B~2`) and `B.N`; mixing `^` and `~` is refused."""
    if not isinstance(ref, str) or not (match := _REF_RE.match(ref)):
        raise InvalidArgument(
            f"invalid ref '{ref}': expected a branch or commit id, optionally with ^, ^N, ~N or .N"
        )
    suffix, nth = match["suffix"], match["nth"]
    if "^" in suffix and "~" in suffix:
        raise InvalidArgument(f"invalid ref '{ref}': '^' and '~' cannot be mixed")
    if suffix and nth is not None:
        raise InvalidArgument(f"invalid ref '{ref}': '.N' cannot follow '^' or '~'")
    steps = _STEP_RE.findall(suffix)
    if "".join(op + digits for op, digits in steps) != suffix:
        raise InvalidArgument(f"invalid ref '{ref}': bad ancestry suffix '{suffix}'")
    back = sum(int(digits) if digits else 1 for _, digits in steps)
    if nth is not None and int(nth) < 1:
        raise InvalidArgument(f"invalid ref '{ref}': '.N' counts from 1 (the oldest commit)")
    return ParsedRef(match["base"], back, int(nth) if nth is not None else None)


# ---- tree views ----------------------------------------------------------------------------


def dir_hash(entries: Iterable[tuple[str, FileEntry]]) -> str:
    """Hash of a directory: its files' relative paths and hashes, length-prefixed, sorted."""
    return digest_fields(field for rel, entry in sorted(entries) for field in (rel, entry.hash))


def node_info(manifest: Manifest, path: str, commit: str) -> FileInfo | None:
    """FileInfo of one normalised path (file or implicit dir), or None when it is absent."""
    kind = node_type(manifest.files, path)
    if kind == "file":
        entry = manifest.files[path]
        return FileInfo(path=path, type="file", size=entry.size, hash=entry.hash, commit=commit)
    if kind is None:
        return None
    prefix = dir_prefix(path)
    below = [(name[len(prefix):], e) for name, e in manifest.files.items() if name.startswith(prefix)]
    size = sum(entry.size for _, entry in below)
    return FileInfo(path=path, type="dir", size=size, hash=dir_hash(below), commit=commit)


def list_nodes(manifest: Manifest, directory: str, commit: str) -> list[FileInfo]:
    """FileInfo of every entry directly below `directory`, sorted by path (one pass)."""
    prefix = dir_prefix(directory)
    files: dict[str, FileEntry] = {}
    dirs: dict[str, list[tuple[str, FileEntry]]] = {}
    for name, entry in manifest.files.items():
        if not name.startswith(prefix):
            continue
        head, slash, rest = name[len(prefix):].partition("/")
        if slash:
            dirs.setdefault(prefix + head, []).append((rest, entry))
        else:
            files[prefix + head] = entry
    infos = [
        FileInfo(path=p, type="file", size=e.size, hash=e.hash, commit=commit)
        for p, e in files.items()
    ]
    infos += [
        FileInfo(path=p, type="dir", size=sum(e.size for _, e in below), hash=dir_hash(below),
                 commit=commit)
        for p, below in dirs.items()
    ]
    return sorted(infos, key=lambda info: info.path)


def diff_manifests(old: Manifest, new: Manifest, path: str = ROOT) -> FileDiff:
    """Files added, modified (different content) and deleted under `path`, each sorted."""
    prefix = dir_prefix(path)

    def under(name: str) -> bool:
        return name == path or name.startswith(prefix)

    added = sorted(n for n in new.files if under(n) and n not in old.files)
    deleted = sorted(n for n in old.files if under(n) and n not in new.files)
    modified = sorted(
        n for n, e in new.files.items() if under(n) and n in old.files and old.files[n] != e
    )
    return FileDiff(added=tuple(added), modified=tuple(modified), deleted=tuple(deleted))
