"""Names and paths: normalisation is idempotent, and every bad input is refused by name."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from storage.errors import InvalidName, InvalidPath
from storage.paths import (
    MAX_PATH_BYTES,
    children,
    find_clash,
    is_dir,
    node_type,
    normalize_dir,
    normalize_path,
    parent_dirs,
    validate_name,
)

NAME_CHARS = "abcXYZ019_-"
segment = st.text(alphabet=st.characters(blacklist_characters="/\x00"), min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)
segments = st.lists(segment, min_size=1, max_size=6)


@given(st.text(alphabet=NAME_CHARS, min_size=1, max_size=63))
def test_valid_names_pass(name: str) -> None:
    # Given a name of allowed characters, When validated, Then it comes back unchanged
    assert validate_name(name) == name


@given(st.text(min_size=1, max_size=80))
@example("a.b")
@example("a/b")
@example("a" * 64)
@example("")
@example("naïve")
def test_invalid_names_are_refused_by_name(name: str) -> None:
    # Given any name with a forbidden character or length, Then InvalidName names it
    if name and len(name) <= 63 and all(c in NAME_CHARS or c.isascii() and c.isalnum() for c in name):
        return
    with pytest.raises(InvalidName) as info:
        validate_name(name, "repo")
    assert f"'{name}'" in str(info.value) and "A-Z" in str(info.value)


@given(segments, st.booleans())
def test_normalize_is_absolute_and_idempotent(parts: list[str], leading: bool) -> None:
    # Given a relative or absolute path, When normalised twice, Then the result is stable
    raw = ("/" if leading else "") + "/".join(parts)
    if len(("/" + raw.lstrip("/")).encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return
    normal = normalize_path(raw)
    assert normal == "/" + "/".join(parts)
    assert normalize_path(normal) == normal
    assert normalize_dir(normal) == normal


@given(segments, st.integers(min_value=0, max_value=5))
def test_dot_segments_are_dropped(parts: list[str], where: int) -> None:
    # Given a path with a '.' segment, Then it names the same file as without it
    dotted = parts[: where] + ["."] + parts[where:]
    assert normalize_path("/".join(dotted)) == normalize_path("/".join(parts))


@pytest.mark.parametrize(
    "bad",
    ["../x", "a/../b", "a/..", "a//b", "//a", "a\x00b", "", "/", "a/b/", ".", "/./"],
)
def test_bad_file_paths_are_refused(bad: str) -> None:
    # Given a path with '..', NUL, an empty segment, or naming the root, Then InvalidPath
    with pytest.raises(InvalidPath) as info:
        normalize_path(bad)
    assert repr(bad) in str(info.value) or f"'{bad}'" in str(info.value)


@given(segments, st.sampled_from(["..", "", "\x00"]))
def test_any_path_with_a_bad_segment_is_refused(parts: list[str], bad: str) -> None:
    # Given a valid path with one bad segment spliced in, Then it is refused
    raw = "/".join(parts + [bad, "x"]) if bad != "\x00" else "/".join(parts) + "\x00"
    with pytest.raises(InvalidPath):
        normalize_path(raw)


def test_length_limit_is_in_bytes() -> None:
    # Given paths just at and over 1024 bytes (multi-byte chars count as bytes), Then the limit holds
    ok = "/" + "a" * (MAX_PATH_BYTES - 1)
    assert normalize_path(ok) == ok
    with pytest.raises(InvalidPath, match="1024 bytes"):
        normalize_path("/" + "é" * 512)


def test_dirs_accept_root_and_trailing_slash() -> None:
    assert normalize_dir("/") == "/"
    assert normalize_dir("") == "/"
    assert normalize_dir("a/b/") == "/a/b"


def test_non_strings_are_refused() -> None:
    with pytest.raises(InvalidPath):
        normalize_path(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidName):
        validate_name(3)


@given(segments)
def test_parent_dirs_are_the_proper_prefixes(parts: list[str]) -> None:
    path = "/" + "/".join(parts)
    parents = parent_dirs(path)
    assert len(parents) == len(parts) - 1
    assert all(path.startswith(p + "/") for p in parents)


FILES = {"/a.txt": 1, "/dir/c.txt": 1, "/dir/sub/d.txt": 1, "/dirx": 1}


def test_implicit_directories() -> None:
    assert is_dir(FILES, "/") and is_dir(FILES, "/dir") and is_dir(FILES, "/dir/sub")
    assert not is_dir(FILES, "/di") and not is_dir(FILES, "/a.txt")
    assert node_type(FILES, "/dirx") == "file"
    assert node_type(FILES, "/nope") is None
    assert children(FILES, "/") == {"/a.txt": "file", "/dir": "dir", "/dirx": "file"}
    assert children(FILES, "/dir") == {"/dir/c.txt": "file", "/dir/sub": "dir"}


def test_find_clash() -> None:
    assert find_clash(FILES) is None
    assert find_clash([*FILES, "/a.txt/b"]) == ("/a.txt", "/a.txt/b")
