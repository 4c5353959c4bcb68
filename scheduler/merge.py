"""Merging datum outputs into one output commit (pure; Pachyderm 1.x's output merge).

The output is the union of every datum's /pfs/out. When several datums write the same path
the file is their concatenation, in datum order (Pachyderm 1.x concatenated in no promised
order; herd fixes it to the datum sort order, as proposed in pachyderm#1468). Only chunk ids
are concatenated; no bytes are copied. A path that is a file in one output and a directory in
another fails the merge, naming the path and both datums.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from storage.errors import HerdError
from storage.model import FileEntry, Manifest, concatenated
from storage.paths import clash_of


def _show(key: Any) -> str:
    if isinstance(key, tuple) and all(isinstance(k, str) for k in key):
        return "(" + ", ".join(key) + ")"
    return repr(key)


def merge_outputs(outputs: Iterable[tuple[Any, Mapping[str, FileEntry]]]) -> Manifest:
    """Union of datum outputs (files by path) keyed by datum sort key; same path -> chunks
    concatenated in key order.

    Keys must be mutually comparable (use `Datum.sort_key`). Equal keys are ordered by the id of
    the output's manifest, so the result never depends on the order `outputs` arrive in.
    Raises HerdError naming the path and both datums on a file/directory clash.
    """
    return merged(outputs)[0]


def merged(outputs: Iterable[tuple[Any, Mapping[str, FileEntry]]]) -> tuple[Manifest, tuple[str, ...]]:
    """merge_outputs, and the paths more than one output wrote: a later merge may change this
    one by what changed (merge_changes) only away from those."""
    parts: dict[str, list[FileEntry]] = {}
    writer: dict[str, Any] = {}  # first datum that wrote each path, for error messages
    for key, files in _in_order(list(outputs)):
        for path, entry in files.items():
            if path in parts:
                parts[path].append(entry)
            else:
                parts[path] = [entry]
                writer[path] = key
    _check_clashes(writer)
    # Every entry is a FileEntry already: no second validation of what may be 100,000 of them.
    files = {path: _concat(entries) for path, entries in sorted(parts.items())}
    return Manifest.model_construct(files=files), tuple(path for path, entries in parts.items() if len(entries) > 1)


def merge_changes(
    merged_before: Manifest, shared: Iterable[str], removed: Iterable[Mapping[str, FileEntry]],
    added: Iterable[Mapping[str, FileEntry]],
) -> Manifest | None:
    """What merge_outputs gives for a set of outputs, from its merge of an earlier set
    (`merged_before`, in which the paths `shared` were written by more than one output): less
    the outputs `removed`, plus the outputs `added`. None when only a whole merge can tell: a
    path that is or would be written by more than one output (its file is a concatenation in
    datum order), or a path that may clash as file and directory (the whole merge names both
    datums). O(changed paths), besides copying the mapping and one sort of its paths."""
    many = set(shared)
    files = dict(merged_before.files)
    for outputs in removed:
        for path in outputs:
            if path in many or path not in files:
                return None
            del files[path]
    new: list[str] = []
    for outputs in added:
        for path, entry in outputs.items():
            if path in files:
                return None
            files[path] = entry
            new.append(path)
    paths = sorted(files) if new else []
    if any(clash_of(path, files, paths) is not None for path in new):
        return None
    return Manifest.model_construct(files=files)


def _in_order(items: list[tuple[Any, Mapping[str, FileEntry]]]) -> list[tuple[Any, Mapping[str, FileEntry]]]:
    items.sort(key=lambda kv: kv[0])
    if any(a[0] == b[0] for a, b in zip(items, items[1:])):
        # Rare (a union's siblings from two repos): the manifest id settles it; computed only then.
        items.sort(key=lambda kv: (kv[0], Manifest.model_construct(files=dict(kv[1])).id))
    return items


def _concat(entries: list[FileEntry]) -> FileEntry:
    if len(entries) == 1:
        return entries[0]
    # One FileEntry built at the end: appending pairwise would copy the chunk tuple every time.
    return concatenated(entries)


def _check_clashes(writer: dict[str, Any]) -> None:
    checked: set[str] = set()  # directories already known not to be files, with their ancestors
    for path in sorted(writer):
        cut = path.rfind("/")
        while cut > 0:
            parent = path[:cut]
            if parent in checked:
                break
            if parent in writer:
                raise HerdError(
                    f"output path '{parent}' is a file in datum {_show(writer[parent])} and a directory "
                    f"in datum {_show(writer[path])} (which wrote '{path}')"
                )
            checked.add(parent)
            cut = path.rfind("/", 0, cut)


__all__ = ["merge_changes", "merge_outputs", "merged"]
