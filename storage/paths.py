"""Pure validation and normalisation of names and file paths; no I/O.

Names (repos, branches, pipelines) follow Pachyderm: `^[A-Za-z0-9_-]{1,63}$`. File paths are
absolute-style (`/a/b.txt`); `a/b.txt` is accepted and `.` segments are dropped, but `..`, NUL,
empty segments and paths over 1024 bytes are refused. Directories are implicit: a directory
exists when some file lies below it, and the root `/` always exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal

from storage.errors import InvalidName, InvalidPath

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
NAME_RULE = "1-63 characters from A-Z, a-z, 0-9, '_' and '-'"
MAX_PATH_BYTES = 1024
ROOT = "/"

NodeType = Literal["file", "dir"]


def validate_name(name: object, kind: str = "name") -> str:
    """Return `name` if it is a valid repo/branch/pipeline name, else raise InvalidName."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidName(f"invalid {kind} name '{name}': use {NAME_RULE}")
    return name


def is_valid_name(name: object) -> bool:
    """Whether `name` is a valid repo/branch/pipeline name."""
    return isinstance(name, str) and NAME_RE.match(name) is not None


def _segments(path: object) -> list[str]:
    """Split a raw path into checked segments ('.' dropped); raise InvalidPath on bad input."""
    if not isinstance(path, str):
        raise InvalidPath(f"invalid path {path!r}: expected a string")
    if "\x00" in path:
        raise InvalidPath(f"invalid path {path!r}: contains a NUL byte")
    body = path[1:] if path.startswith("/") else path
    if body.endswith("/"):
        body = body[:-1]  # a trailing '/' names the same directory
    if body == "":
        return []
    parts = body.split("/")
    if "" in parts:
        raise InvalidPath(f"invalid path '{path}': empty segment ('//')")
    if ".." in parts:
        raise InvalidPath(f"invalid path '{path}': '..' is not allowed")
    return [part for part in parts if part != "."]


def _join_checked(path: str, parts: list[str]) -> str:
    normal = "/" + "/".join(parts)
    if len(normal.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidPath(f"invalid path '{path[:64]}...': longer than {MAX_PATH_BYTES} bytes")
    return normal


def normalize_dir(path: object) -> str:
    """Normalise a directory path: '/' for the root, else '/a/b' (no trailing slash)."""
    parts = _segments(path)
    return _join_checked(str(path), parts)


def normalize_path(path: object) -> str:
    """Normalise a file path to '/a/b.txt'; the root and trailing slashes are refused."""
    if isinstance(path, str) and path.endswith("/") and path.strip("/"):
        raise InvalidPath(f"invalid file path '{path}': ends with '/'")
    parts = _segments(path)
    if not parts:
        raise InvalidPath(f"invalid file path '{path}': names the root directory, not a file")
    return _join_checked(str(path), parts)


def parent_dirs(path: str) -> list[str]:
    """The directories above a normalised path, outermost first, without the root."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def dir_prefix(directory: str) -> str:
    """The string every path below `directory` starts with ('/' or '/a/')."""
    return "/" if directory == ROOT else directory + "/"


def is_dir(files: Iterable[str], path: str) -> bool:
    """Whether `path` is an (implicit) directory among the normalised file paths."""
    if path == ROOT:
        return True
    prefix = dir_prefix(path)
    return any(name.startswith(prefix) for name in files)


def node_type(files: Mapping[str, object], path: str) -> NodeType | None:
    """'file', 'dir' or None for a normalised path in a manifest's files."""
    if path in files:
        return "file"
    return "dir" if is_dir(files, path) else None


def children(files: Iterable[str], directory: str) -> dict[str, NodeType]:
    """The entries directly below `directory`, by full path, with their type."""
    prefix = dir_prefix(directory)
    found: dict[str, NodeType] = {}
    for name in files:
        if not name.startswith(prefix):
            continue
        head, slash, _ = name[len(prefix):].partition("/")
        found[prefix + head] = "dir" if slash else "file"
    return dict(sorted(found.items()))


def find_clash(paths: Iterable[str]) -> tuple[str, str] | None:
    """A (file, path below it) pair showing a path is both a file and a directory, else None."""
    names = set(paths)
    for name in sorted(names):
        for parent in parent_dirs(name):
            if parent in names:
                return parent, name
    return None


def clash_message(found: tuple[str, str]) -> str:
    """Human words for a find_clash result."""
    return f"'{found[0]}' would be both a file and a directory (holding '{found[1]}')"
