"""Tree views of a manifest and diffs between two: what `list_file`, `inspect_file` and
`diff_file` show, implicit directories included. Pure: tested without an object store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from storage.errors import InvalidPath
from storage.model import FileDiff, FileEntry, FileInfo, Manifest, digest_fields
from storage.paths import ROOT, clash_message, clash_of, dir_prefix, find_clash, node_type, normalize_path


def dir_hash(entries: Iterable[tuple[str, FileEntry]]) -> str:
    """Hash of a directory: its files' relative paths and hashes, length-prefixed, sorted."""
    return digest_fields(field for rel, entry in sorted(entries) for field in (rel, entry.hash))


def node_info(manifest: Manifest, path: str, commit: str) -> FileInfo | None:
    """FileInfo of one normalised path (file or implicit dir), or None when it is absent."""
    kind = node_type(manifest.files, path)
    if kind == "file":
        entry = manifest.files[path]
        return FileInfo.unchecked(path, "file", entry.size, entry.hash, commit)
    if kind is None:
        return None
    prefix = dir_prefix(path)
    below = [(name[len(prefix):], e) for name, e in manifest.files.items() if name.startswith(prefix)]
    size = sum(entry.size for _, entry in below)
    return FileInfo.unchecked(path, "dir", size, dir_hash(below), commit)


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
    # Values of a parsed manifest: no validation again (FileInfo.unchecked), for big folders
    infos = [FileInfo.unchecked(p, "file", e.size, e.hash, commit) for p, e in files.items()]
    infos += [
        FileInfo.unchecked(p, "dir", sum(e.size for _, e in below), dir_hash(below), commit)
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


def changed_files(old: Mapping[str, FileEntry], new: Mapping[str, FileEntry]) -> dict[str, FileEntry]:
    """The files of `new` that `old` lacks or holds otherwise. A manifest built from another
    holds that one's own entry objects where nothing changed: `is` settles nearly all."""
    return {path: entry for path, entry in new.items() if (was := old.get(path)) is not entry and was != entry}


def check_manifest(manifest: Manifest, base: Manifest) -> None:
    """InvalidPath unless every path of `manifest` is normalised and none is both a file and a
    directory. `base` (a stored manifest, checked when written) is the one it was built from: a
    path it holds with the same entry is one of its, so only the others are looked at, each
    against the whole (paths gone cannot clash)."""
    files = manifest.files
    changed = changed_files(base.files, files)
    for path in changed:
        if normalize_path(path) != path:
            raise InvalidPath(f"manifest path '{path}' is not normalised")
    if len(changed) * 4 > len(files):
        clash = find_clash(files)  # much of it new: the whole, in one sort
    else:
        paths = sorted(files) if changed else []
        clash = next((found for path in changed if (found := clash_of(path, files, paths)) is not None), None)
    if clash is not None:
        raise InvalidPath(f"invalid manifest: {clash_message(clash)}")
