"""Pachyderm 1.6+ glob patterns, compiled to regular expressions over node paths.

Nodes are files, the directories implied by file paths, and the root. Paths are canonical:
a leading `/`, no trailing `/`, and the root is `""`, so only the pattern `/` matches it.

Syntax (Pachyderm's gobwas/ohmyglob with `/` as the separator):
`*` any run of non-`/` characters (maybe empty); `**` any run, `/` included; `?` one non-`/`
character; `[abc]`, `[a-z]`, `[!abc]` character classes (`^` is literal, and, as in
Pachyderm, a class can match `/`); `{a,b}` alternatives (which may contain `/`); `\\x` a
literal `x`; `(a|b)` a capture group, also `@( *( +( ?( !(` as in ohmyglob (1.9.4+),
so a literal `(` must be escaped. Dotfiles match `*`.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

from storage.errors import InvalidGlob

_QUANTIFIERS = {"@": "", "*": "*", "+": "+", "?": "?"}
_SPECIAL = set("*?[{(\\")


def normalize(pattern: str) -> str:
    """Go's path.Clean of '/' + pattern, with the root spelled '' (Pachyderm's clean())."""
    out: list[str] = []
    for seg in pattern.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    return "".join("/" + seg for seg in out)


def canonical_path(path: str) -> str:
    """A node path as the matcher sees it: '/a/b' for files and directories, '' for the root."""
    path = path.rstrip("/")
    return path if not path or path.startswith("/") else "/" + path


class _Parser:
    """Recursive descent over one pattern; emits a Python regex and notes if it is literal."""

    def __init__(self, pattern: str, source: str) -> None:
        self.p, self.i, self.source = pattern, 0, source
        self.literal = True

    def fail(self, why: str) -> InvalidGlob:
        return InvalidGlob(f"invalid glob '{self.source}': {why}")

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.p[j] if j < len(self.p) else ""

    def sequence(self, stops: str) -> str:
        """Parse until a stop character (not consumed) or the end."""
        parts: list[str] = []
        while self.i < len(self.p) and self.peek() not in stops:
            parts.append(self.atom())
        return "".join(parts)

    def atom(self) -> str:
        c, nxt = self.peek(), self.peek(1)
        if c in _QUANTIFIERS or c == "!":
            if nxt == "(":
                self.i += 2
                return self.capture(c)
        if c == "*":
            self.literal = False
            if nxt == "*":
                self.i += 2
                return ".*"
            self.i += 1
            return "[^/]*"
        if c == "?":
            self.literal = False
            self.i += 1
            return "[^/]"
        if c == "[":
            self.i += 1
            return self.char_class()
        if c == "{":
            self.i += 1
            return self.alternatives()
        if c == "(":
            self.i += 1
            return self.capture("@")
        if c == "\\":
            if self.i + 1 >= len(self.p):
                raise self.fail("trailing '\\'")
            self.i += 2
            return re.escape(nxt)
        self.i += 1
        return re.escape(c)

    def alternatives(self) -> str:
        self.literal = False
        options = [self.sequence(",}")]
        while self.peek() == ",":
            self.i += 1
            options.append(self.sequence(",}"))
        if self.peek() != "}":
            raise self.fail("unbalanced '{'")
        self.i += 1
        return "(?:" + "|".join(options) + ")"

    def capture(self, kind: str) -> str:
        self.literal = False
        options = [self.sequence("|)")]
        while self.peek() == "|":
            self.i += 1
            options.append(self.sequence("|)"))
        if self.peek() != ")":
            raise self.fail("unbalanced '('")
        self.i += 1
        body = "|".join(options)
        if kind == "!":
            # ohmyglob: anything within a segment that does not start with the group
            # (anchored to the end when nothing follows the group).
            end = "$" if self.i >= len(self.p) else ""
            return f"((?:(?!(?:{body}){end})[^/]*))"
        quant = _QUANTIFIERS[kind]
        return f"((?:{body}){quant})" if quant else f"({body})"

    def char_class(self) -> str:
        self.literal = False
        negate = self.peek() == "!"
        if negate:
            self.i += 1
        members: list[str] = []
        while self.peek() != "]":
            if self.i >= len(self.p):
                raise self.fail("unbalanced '['")
            lo = self.class_char()
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.i += 1
                hi = self.class_char()
                if hi < lo:
                    raise self.fail(f"bad range '{lo}-{hi}'")
                members.append(f"{re.escape(lo)}-{re.escape(hi)}")
            else:
                members.append(re.escape(lo))
        self.i += 1
        if not members:
            raise self.fail("empty character class '[]'")
        return "[" + ("^" if negate else "") + "".join(members) + "]"

    def class_char(self) -> str:
        c = self.peek()
        if c == "\\":
            if self.i + 1 >= len(self.p):
                raise self.fail("unbalanced '['")
            self.i += 2
            return self.p[self.i - 1]
        self.i += 1
        return c


@dataclass(frozen=True)
class Glob:
    """A compiled glob: `match(path)` says whether a node path matches it."""

    pattern: str
    normalized: str
    regex: re.Pattern[str]
    literal: str | None  # the exact node path when the pattern has no metacharacter

    def match(self, path: str) -> bool:
        """True when the node at `path` ('/' or '' for the root) is matched."""
        path = canonical_path(path)
        if self.literal is not None:
            return path == self.literal
        return self.regex.fullmatch(path) is not None


def compile_glob(pattern: str) -> Glob:
    """Compile a Pachyderm glob; InvalidGlob names the pattern when it is malformed."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise InvalidGlob(f"invalid glob '{pattern}': the pattern is empty")
    norm = normalize(pattern)
    parser = _Parser(norm, pattern)
    body = parser.sequence("")
    if parser.i != len(norm):  # pragma: no cover - sequence("") always consumes everything
        raise parser.fail("unexpected character")
    try:
        regex = re.compile(body, re.DOTALL)
    except re.error as exc:
        raise InvalidGlob(f"invalid glob '{pattern}': {exc}") from None
    literal = _unescape(norm) if parser.literal else None
    return Glob(pattern=pattern, normalized=norm, regex=regex, literal=literal)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text, flags=re.DOTALL)


def directories(file_paths: Iterable[str]) -> set[str]:
    """Every directory implied by the file paths, the root ('') included."""
    dirs: set[str] = {""}
    add = dirs.add
    for path in file_paths:
        cut = path.rfind("/")
        while cut > 0:
            parent = path[:cut]
            if parent in dirs:
                break  # its ancestors were added with it
            add(parent)
            cut = path.rfind("/", 0, cut)
    return dirs


def match_nodes(pattern: str | Glob, file_paths: Iterable[str]) -> list[str]:
    """The nodes (files, implicit directories, the root '/') the pattern matches, sorted by path."""
    glob = pattern if isinstance(pattern, Glob) else compile_glob(pattern)
    files = file_paths if isinstance(file_paths, (set, frozenset, dict)) else set(file_paths)
    if glob.literal is not None:
        return [_display(glob.literal)] if _node_exists(glob.literal, files) else []
    fullmatch = glob.regex.fullmatch
    nodes = [n for n in files if fullmatch(n)]
    nodes += [d for d in directories(files) if fullmatch(d)]
    nodes.sort()
    if nodes and nodes[0] == "":
        nodes[0] = "/"
    return nodes


def _node_exists(path: str, files: Iterable[str]) -> bool:
    if path == "" or path in files:
        return True
    prefix = path + "/"
    return any(f.startswith(prefix) for f in files)


def _display(path: str) -> str:
    return path or "/"


def subtree(path: str, sorted_files: list[str]) -> list[str]:
    """The files at or below node `path` ('/' is the root), from a sorted list of file paths."""
    node = canonical_path(path)
    if node == "":
        return sorted_files
    i = bisect_left(sorted_files, node)
    if i < len(sorted_files) and sorted_files[i] == node:
        return [node]  # a file
    # Everything under `node/` is one contiguous run of the sorted list: '0' follows '/'.
    return sorted_files[bisect_left(sorted_files, node + "/"):bisect_left(sorted_files, node + "0")]


__all__ = ["Glob", "canonical_path", "compile_glob", "directories", "match_nodes", "normalize", "subtree"]
