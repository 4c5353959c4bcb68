"""Names and paths: normalisation is idempotent, and every bad input is refused by name."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from storage.errors import InvalidName, InvalidPath
from storage.paths import (
    MAX_PATH_BYTES,
    already_normal,
    children,
    find_clash,
    is_dir,
    node_type,
    normalize_dir,
    is_valid_name,
    normalize_path,
    parent_dirs,
    printable,
    validate_name,
)

NAME_CHARS = "abcXYZ019_-"
# What a path may hold: any text but '/', control characters (Cc: C0, DEL, C1), lone surrogates
# (bytes that were not UTF-8), line/paragraph separators and bidirectional overrides.
REFUSED = "\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/" + REFUSED),
    min_size=1, max_size=12,
).filter(lambda s: s not in (".", ".."))
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
    assert f"'{printable(name)}'" in str(info.value) and "A-Z" in str(info.value)


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


@given(st.one_of(
    st.text(alphabet="/.ab\u00e9\U0001f600\x00\u2028 ", max_size=30),
    st.builds(lambda n, c: "/" + c * n, st.integers(250, 260), st.sampled_from(["a", "\u00e9", "\U0001f600"])),
))
@example("/a/.b")
@example("/" + "\U0001f600" * 255)
def test_a_path_taken_as_already_normal_is_what_the_long_way_makes_of_it(path: str) -> None:
    # normalize_dir always splits, checks and joins: for a path normalize_path returns at once,
    # it returns the same, and where the quick test declines, both still agree
    if already_normal(path):
        assert normalize_dir(path) == path == normalize_path(path)
        return
    try:
        long_way = normalize_dir(path)
    except InvalidPath:
        with pytest.raises(InvalidPath):
            normalize_path(path)
        return
    if long_way != "/" and not path.endswith("/"):
        assert normalize_path(path) == long_way


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


def _first_clash(paths: list[str]) -> tuple[str, str] | None:
    """find_clash by its definition: the first path in sorted order below a file, and that file."""
    names = set(paths)
    return next(((parent, name) for name in sorted(names) for parent in parent_dirs(name) if parent in names), None)


# Short names from few characters, with '.', '-' and '0' (which sort just around '/') and a
# non-ASCII one, so that a file and what lies below it are often far apart in sorted order.
short_path = st.lists(st.sampled_from(["a", "b", "a.b", "a-", "a0", "é", "ab"]), min_size=1, max_size=4).map(
    lambda parts: "/" + "/".join(parts))


@given(st.lists(short_path, max_size=12))
@example(["/a", "/a.b", "/a/b"])  # '/a.b' sorts between a file and what lies below it
@example(["/a", "/a-/b", "/a/b/a"])
@example(["/a/b", "/a/b", "/a"])  # a path given twice
def test_find_clash_is_its_definition(paths: list[str]) -> None:
    # Given any set of normalised paths
    # Then find_clash names a clash when there is one, the same pair the definition names
    assert find_clash(paths) == _first_clash(paths)


def test_find_clash_of_paths_that_hold_a_nul() -> None:
    # A NUL (refused in paths, but find_clash may be asked of anything) is what '/' becomes
    # in the fast test's sort keys: the definition answers instead
    assert find_clash(["/a\x00b", "/a"]) is None
    assert find_clash(["/a\x00b", "/a\x00b/c"]) == ("/a\x00b", "/a\x00b/c")


# --- issue 9: whole-name matches, and paths that are text ------------------------------------


@pytest.mark.parametrize(
    "name",
    ["abc\n", "\nabc", "abc\r\n", "ab\nc", "abc\x00", "abc ", "\tabc", "a" * 64, "ａｂｃ", "١٢٣", "abc\u200b"],
)
def test_names_must_match_whole(name: str) -> None:
    # Given a name that is valid but for a newline or other character around or inside it
    # Then it is refused (a `^...$` match let 'abc\n' through, which then listed as 'abc')
    assert not is_valid_name(name)
    with pytest.raises(InvalidName) as info:
        validate_name(name, "repo")
    # And the message shows the name escaped: one line, no raw control character
    message = str(info.value)
    assert f"'{printable(name)}'" in message
    assert all(c.isprintable() for c in message), message


@given(st.text(max_size=70))
@example("abc\n")
@example("a" * 63)
def test_is_valid_name_and_validate_name_agree(name: str) -> None:
    # Given any text; Then the check reads use and the check writes use give the same answer
    try:
        validate_name(name)
        valid = True
    except InvalidName:
        valid = False
    assert valid == is_valid_name(name)
    assert valid == (1 <= len(name) <= 63 and all(c in NAME_CHARS or c.isascii() and c.isalnum() for c in name))


CONTROL_CHARS = [chr(c) for c in [*range(0x01, 0x20), 0x7F, *range(0x80, 0xA0)]]


@pytest.mark.parametrize("char", CONTROL_CHARS, ids=lambda c: f"U+{ord(c):04X}")
def test_control_characters_in_paths_are_refused_and_escaped(char: str) -> None:
    # Given a path holding one control character (C0, DEL or C1)
    path = f"/dir/a{char}b.txt"
    # Then every path function refuses it, naming the path with the character escaped
    for check in (normalize_path, normalize_dir):
        with pytest.raises(InvalidPath) as info:
            check(path)
        message = str(info.value)
        assert f"'{printable(path)}'" in message and "control character" in message
        assert char not in message and all(c.isprintable() for c in message)


def test_escapes_read_like_python() -> None:
    assert printable("/a\x1b[31m") == "/a\\x1b[31m"
    assert printable("/a\nb\tc\r") == "/a\\nb\\tc\\r"
    assert printable("/bad\udcff") == "/bad\\xff"  # b'\xff' from argv, decoded with surrogateescape
    assert printable("/x\u202etxt.exe") == "/x\\u202etxt.exe"
    assert printable("/naïve/日本 b/👨👩") == "/naïve/日本 b/👨👩"
    assert printable("/zero\u200bwidth") == "/zero\\u200bwidth"  # shown, though a path may hold it


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/bad\udcff", "not valid UTF-8 (\\xff)"),
        ("/bad\ud800", "not valid UTF-8 (\\ud800)"),
        ("/a\u2028b", "line separator"),
        ("/invoice\u202efdp.exe", "bidirectional control (\\u202e)"),
        ("/a\x00b", "NUL"),
    ],
)
def test_non_text_paths_are_refused(path: str, words: str) -> None:
    # Given bytes that were not UTF-8 (argv gives them as surrogates) or characters that change
    # what a terminal shows; Then the path is refused, never stored under another name
    with pytest.raises(InvalidPath) as info:
        normalize_path(path)
    assert words in str(info.value)
    assert f"'{printable(path)}'" in str(info.value)
    str(info.value).encode("utf-8")  # the message itself can always be printed


@given(st.text(max_size=40))
@example("\u0fdb/")  # an unassigned character before a trailing '/' (found by hypothesis)
@example("\u0fdb")
def test_no_message_ever_carries_a_raw_control_character(path: str) -> None:
    # Given any text as a path; When it is refused; Then the message is printable one-line text
    try:
        normalize_path(path)
    except InvalidPath as exc:
        message = str(exc)
        message.encode("utf-8")
        assert all(c.isprintable() for c in message), message


def test_real_text_still_passes() -> None:
    # Given names people use (accents, CJK, emoji joined with ZWJ, spaces); Then they pass
    for path in ("/naïve café.txt", "/日本語/ファイル", "/family 👨\u200d👩\u200d👧.png", "/a b/c"):
        assert normalize_path(path) == path
