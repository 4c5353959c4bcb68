"""diff-file's arguments in pachctl's order (pure; the diff across repos or paths is HerdPfs.diff_paths).

pachctl 1.x: `diff-file new-repo new-commit new-path [old-repo old-commit old-path]`; 1.9:
`new-repo@new-commit:new-path [old-repo@old-commit:old-path]`. The old side defaults to the new
commit's parent at the same path. Paths in the result are the new side's.
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from scheduler.cli.context import expand_target
from storage.paths import ROOT

DIFF_USAGE = "REPO COMMIT PATH [OLD-REPO OLD-COMMIT OLD-PATH]"


@dataclass(frozen=True)
class FileRef:
    """One side of a diff: a path in a repo at a ref."""

    repo: str
    ref: str
    path: str


def diff_targets(words: tuple[str, ...]) -> tuple[FileRef, FileRef | None]:
    """The new side and the old side (None: the parent) of `diff-file WORDS`.

    Accepted: REPO COMMIT [PATH [OLD-REPO OLD-COMMIT OLD-PATH]] and
    repo@commit[:path] [old-repo@old-commit[:path] | OLD-COMMIT]; an old side written as a lone
    ref keeps the new side's repo and path."""
    if words and "@" in words[0]:
        new = _one(expand_target(words[:1]), words[0])
        rest = words[1:]
        if not rest:
            return new, None
        if len(rest) > 1:
            raise click.UsageError("expected repo@commit[:path] [old-repo@old-commit[:path]]")
        if "@" not in rest[0]:
            return new, FileRef(new.repo, rest[0], new.path)  # herd's short form: another ref
        old = expand_target(rest)
        return new, _one(old, rest[0], default_path=new.path)
    words = _expand_slash_forms(words)
    if len(words) not in (2, 3, 6) or any(word == "" for word in words):
        raise click.UsageError(f"expected {DIFF_USAGE} (or repo@commit:path [old-repo@old-commit:path]), "
                               f"got {len(words)} words")
    new = FileRef(words[0], words[1], words[2] if len(words) > 2 else ROOT)
    if len(words) == 6:
        return new, FileRef(words[3], words[4], words[5])
    return new, None


def _expand_slash_forms(words: tuple[str, ...]) -> tuple[str, ...]:
    """pachctl up to 1.8's `repo/commit PATH [old-repo/old-commit OLD-PATH]` as separate words."""
    out: list[str] = []
    rest = list(words)
    while rest:
        if "/" in rest[0] and not rest[0].startswith("/") and len(out) in (0, 3):  # where a repo stands
            out += expand_target(rest[:1])
            rest = rest[1:]
            if rest:
                out.append(rest.pop(0))  # its path
            continue
        out.append(rest.pop(0))
    return tuple(out)


def _one(parts: list[str], word: str, default_path: str = ROOT) -> FileRef:
    if len(parts) not in (2, 3) or any(part == "" for part in parts):
        raise click.UsageError(f"'{word}': expected repo@commit[:path]")
    return FileRef(parts[0], parts[1], parts[2] if len(parts) == 3 else default_path)
