"""HerdPfs: storage.repos.Pfs plus the file verbs that need scheduler code or several reads.

The CLI once reached into storage internals for these (glob-file read the tree and ran the
datum matcher, diff-file across repos read two manifests, put-file --split drove Files
directly). As methods of the API they have one route each in `herd serve` and one twin in
scheduler/remote/pfs.py, so the CLI calls the same names on either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

from storage.collector import collector_paused
from storage.model import Commit, FileDiff, FileEntry, FileInfo, Manifest
from storage.paths import dir_prefix, normalize_dir
from storage.repos import Pfs
from storage.split import SplitMode

# From this many matches up, their FileInfos are made with the cyclic collector paused
# (storage.collector): 100,000 of them (FileInfo.unchecked) in 0.19 s instead of 0.31 s.
MANY_NODES = 10_000


class HerdPfs(Pfs):
    """Pfs with glob_file, diff_paths, put_split, walk_file and file_entry."""

    def glob_file(self, repo: str, ref: str, pattern: str) -> list[FileInfo]:
        """The files and directories `pattern` matches (the datum matcher), an open commit's too."""
        from scheduler.glob import match_nodes

        commit, manifest = self.files.snapshot(repo, ref)
        files = manifest.files
        nodes = match_nodes(pattern, files)
        infos = []
        with collector_paused(len(nodes) >= MANY_NODES):
            for node in nodes:
                entry = files.get(node)
                if entry is None:  # an implicit directory: the porcelain sums what lies below it
                    infos.append(self.files.inspect_file(repo, commit.id, node))
                else:  # a file: its manifest entry already holds size and hash
                    infos.append(FileInfo.unchecked(node, "file", entry.size, entry.hash, commit.id))
        return infos

    def diff_paths(
        self, repo: str, ref: str, path: str, old_repo: str, old_ref: str, old_path: str,
    ) -> FileDiff:
        """diff-file against another repo or path: the old side's files moved onto `path`, so
        they compare by name; the paths shown are the new side's."""
        from storage.trees import diff_manifests

        if old_repo == repo and normalize_dir(old_path) == normalize_dir(path):
            return self.diff_file(repo, ref, old_ref, path)
        self.inspect_file(old_repo, old_ref, old_path)  # FileNotFound naming the old side
        after = self.files.snapshot(repo, ref)[1]
        before = rebased(self.files.snapshot(old_repo, old_ref)[1], old_path, path)
        return diff_manifests(before, after, normalize_dir(path))

    def put_split(
        self, repo: str, ref: str, items: Sequence[tuple[str, BinaryIO, str]], mode: SplitMode,
        target_datums: int = 0, target_bytes: int = 0, append: bool = False,
    ) -> Commit:
        """put-file --split: each (path, stream, source name) cut into chunk files below path,
        all in one commit (storage/split_put.py)."""
        from storage.split_put import put_split

        return put_split(self.files, repo, ref, items, mode, target_datums, target_bytes, append=append)

    def walk_file(self, repo: str, ref: str, path: str) -> list[FileInfo]:
        """Every file at or below `path` (the file itself when it is one), by path; all of one
        commit (FileNotFound when nothing is there)."""
        commit, manifest = self.files.snapshot(repo, ref)
        info = self.files.inspect_file(repo, commit.id, path)
        if info.type == "file":
            return [info]
        prefix = dir_prefix(info.path)
        return [FileInfo.unchecked(name, "file", entry.size, entry.hash, commit.id)
                for name, entry in sorted(manifest.files.items()) if name.startswith(prefix)]

    def file_entry(self, repo: str, ref: str, path: str) -> tuple[Commit, FileEntry]:
        """A file's commit and entry (its chunks): what a download announces before the bytes."""
        return self.files.entry(repo, ref, path)


def rebased(manifest: Manifest, old_path: str, new_path: str) -> Manifest:
    """The files of `manifest` at or below `old_path`, moved to `new_path` (a file or a
    directory), so an old side at another path diffs against the new side by name (pure)."""
    old, new = normalize_dir(old_path), normalize_dir(new_path)
    if old == new:
        return manifest
    files = {}
    if old in manifest.files:  # a file: compared with the new side's path itself
        files[new] = manifest.files[old]
    prefix = dir_prefix(old)
    for name, entry in manifest.files.items():
        if name.startswith(prefix):
            files[dir_prefix(new) + name[len(prefix):]] = entry
    return Manifest(files=files)
