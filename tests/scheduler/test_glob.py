"""Glob → nodes: Pachyderm's worked example (its glob pattern docs) pinned, then properties."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from scheduler.glob import compile_glob, directories, match_nodes, normalize, subtree
from storage.errors import InvalidArgument, InvalidGlob
from tests.fakes import file_trees

TREE = ["/a.txt", "/b.csv", "/.hidden", "/dir/c.txt", "/dir/sub/d.txt"]
ALL_NON_ROOT = ["/.hidden", "/a.txt", "/b.csv", "/dir", "/dir/c.txt", "/dir/sub", "/dir/sub/d.txt"]

WORKED_EXAMPLE = [
    ("/", ["/"]),
    ("/*", ["/.hidden", "/a.txt", "/b.csv", "/dir"]),
    ("*", ["/.hidden", "/a.txt", "/b.csv", "/dir"]),
    ("/*/*", ["/dir/c.txt", "/dir/sub"]),
    ("/*/*/*", ["/dir/sub/d.txt"]),
    ("/dir", ["/dir"]),
    ("/dir/", ["/dir"]),
    ("/*.txt", ["/a.txt"]),
    ("/**", ALL_NON_ROOT),
    ("**", ALL_NON_ROOT),
    ("/**.txt", ["/a.txt", "/dir/c.txt", "/dir/sub/d.txt"]),
    ("/**/*.txt", ["/dir/c.txt", "/dir/sub/d.txt"]),
    ("/?.txt", ["/a.txt"]),
    ("/[ab].*", ["/a.txt", "/b.csv"]),
    ("/[!a]*", ["/.hidden", "/b.csv", "/dir"]),
    ("/{a.txt,dir}", ["/a.txt", "/dir"]),
    ("/nope", []),
]


@pytest.mark.parametrize(("pattern", "expected"), WORKED_EXAMPLE)
def test_worked_example(pattern: str, expected: list[str]) -> None:
    # Given the tree of Pachyderm's worked example, When matching, Then exactly its nodes come back.
    assert match_nodes(pattern, TREE) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("/[^a]*", ["/a.txt"]),  # '^' is literal in a class (1.6+); '[!' negates
        ("/[a-b].*", ["/a.txt", "/b.csv"]),
        ("/{dir/sub,a.txt}", ["/a.txt", "/dir/sub"]),  # alternatives may contain '/'
        ("/dir/{c,sub/d}.txt", ["/dir/c.txt", "/dir/sub/d.txt"]),
        ("/\\*", []),  # an escaped metacharacter is literal
        ("//dir//./sub/", ["/dir/sub"]),  # '//' and '.' collapse, trailing '/' dropped
        ("/dir/../a.txt", ["/a.txt"]),  # '..' resolved as Go's path.Clean does
        (".", ["/"]),
        ("/(a|b).*", ["/a.txt", "/b.csv"]),  # capture groups (1.9.4+)
        ("/@(a).txt", ["/a.txt"]),
        ("/dir/+(s|u|b)", ["/dir/sub"]),
        ("/*(q).hidden", ["/.hidden"]),
        ("/!(a).txt", []),
        ("/*/!(c.txt)", ["/dir/sub"]),
        ("/a.tx?", ["/a.txt"]),
        ("/dir/c.txt", ["/dir/c.txt"]),
        ("/dir/sub/d.txt/", ["/dir/sub/d.txt"]),
    ],
)
def test_more_syntax(pattern: str, expected: list[str]) -> None:
    assert match_nodes(pattern, TREE) == expected


def test_root_exists_even_in_an_empty_commit() -> None:
    # Given no files, Then '/' still matches the root (Pachyderm 1.x), and nothing else matches.
    assert match_nodes("/", []) == ["/"]
    assert match_nodes("/*", []) == []
    assert match_nodes("/**", []) == []


def test_class_matches_a_slash_as_in_pachyderm() -> None:
    # Pachyderm's glob library does not exclude the separator from [...] classes.
    assert match_nodes("/dir[!x]c.txt", TREE) == ["/dir/c.txt"]


@pytest.mark.parametrize("bad", ["", "   ", "/[ab", "/{a,b", "/(a|b", "/a\\", "/[]", "/[z-a]"])
def test_bad_patterns_name_the_pattern(bad: str) -> None:
    with pytest.raises(InvalidGlob) as info:
        compile_glob(bad)
    assert f"'{bad}'" in str(info.value)
    assert isinstance(info.value, InvalidArgument)


def test_glob_match_accepts_root_spellings() -> None:
    g = compile_glob("/")
    assert g.match("/") and g.match("")
    assert not g.match("/a")
    assert compile_glob("/dir").match("/dir/")


def test_normalize() -> None:
    assert normalize("*") == "/*"
    assert normalize("/") == ""
    assert normalize("a//b/./c/") == "/a/b/c"


def test_subtree_and_directories() -> None:
    files = sorted(TREE + ["/dir-x", "/dir0"])  # neighbours that sort around '/dir/'
    assert subtree("/dir", files) == ["/dir/c.txt", "/dir/sub/d.txt"]
    assert subtree("/a.txt", files) == ["/a.txt"]
    assert subtree("/", files) == files
    assert directories(TREE) == {"", "/dir", "/dir/sub"}


def test_100k_files_match_each_once() -> None:
    # (how fast: bench/pipeline.py's "glob over 100000 paths" row)
    files = [f"/d{i % 100:03d}/f{i:06d}.txt" for i in range(100_000)]
    assert match_nodes("/*/*", files) == sorted(files)
    assert len(match_nodes("/*", files)) == 100
    assert match_nodes("/d050/f050050.txt", files) == ["/d050/f050050.txt"]


# ---- properties -------------------------------------------------------------------------

SEGMENT = st.text(alphabet="ab.xy", min_size=1, max_size=3).filter(lambda s: s not in (".", ".."))
TREES = file_trees(SEGMENT, max_depth=4, max_files=25)
PATTERN_SEGMENT = st.sampled_from(["*", "a", "b", "a*", "*.x", "?", "x*y", ".*", "[ab]*"])
PATTERNS = st.lists(PATTERN_SEGMENT, min_size=1, max_size=4).map(lambda s: "/" + "/".join(s))


def _nodes(files: list[str]) -> set[str]:
    return set(files) | {d or "/" for d in directories(files)}


@given(TREES, PATTERNS)
@example(TREE, "/*")
@example([], "/*")
def test_segment_patterns_agree_with_fnmatch(files: list[str], pattern: str) -> None:
    # Given a pattern of single-segment wildcards, a node matches iff it has as many segments
    # and each segment matches (fnmatch's '*' never meets a '/' inside one segment).
    want = sorted(
        n for n in _nodes(files) if n != "/" and len(n.split("/")) == len(pattern.split("/"))
        and all(fnmatch.fnmatchcase(s, p) for s, p in zip(n.split("/")[1:], pattern.split("/")[1:]))
    )
    assert match_nodes(pattern, files) == want


@given(TREES)
def test_double_star_is_every_node_but_the_root(files: list[str]) -> None:
    assert match_nodes("/**", files) == sorted(_nodes(files) - {"/"})
    assert match_nodes("/", files) == ["/"]


@given(TREES, PATTERNS, st.randoms())
def test_result_ignores_listing_order_and_is_sorted_unique(files: list[str], pattern: str, rnd) -> None:
    shuffled = list(files)
    rnd.shuffle(shuffled)
    result = match_nodes(pattern, shuffled)
    assert result == match_nodes(pattern, files) == sorted(set(result))


@given(TREES, PATTERNS)
def test_relative_and_trailing_slash_spellings_are_equivalent(files: list[str], pattern: str) -> None:
    assert match_nodes(pattern.lstrip("/"), files) == match_nodes(pattern + "/", files) == match_nodes(pattern, files)


@given(TREES, st.data())
def test_literal_pattern_is_an_exact_lookup(files: list[str], data) -> None:
    nodes = sorted(_nodes(files))
    node = data.draw(st.sampled_from(nodes))
    assert match_nodes(node, files) == [node]


@given(TREES, PATTERNS)
def test_match_nodes_agrees_with_glob_match(files: list[str], pattern: str) -> None:
    g = compile_glob(pattern)
    assert match_nodes(g, files) == sorted(n for n in _nodes(files) if g.match(n))


# ---- the automaton against the old backtracking regex -------------------------------------

from scheduler.glob import MAX_NESTING, _Matcher, _Parser, canonical_path, reference_regex  # noqa: E402

GLOB_TOKENS = st.sampled_from([
    "a", "b", ".", "/", "*", "**", "?", "[ab]", "[!a]", "[a-b]", "[/]", "\\*", "{a,b/}", "{a*,}", "{,/b}",
    "(a|b)", "@(b|a*)", "*(a|b)", "+(a)", "?(b)", "!(a)", "!(a*)", "!(**b)", "!(a|!(b))", "*(a|)", "+(?|/)",
])
RANDOM_PATTERNS = st.lists(GLOB_TOKENS, min_size=1, max_size=6).map("".join)
RANDOM_PATHS = st.text(alphabet="ab./*", max_size=10).map(lambda s: "/" + s if s else "")


def _automaton(pattern: str) -> _Matcher:
    return _Matcher(_Parser(normalize(pattern), pattern).sequence(""))


@given(RANDOM_PATTERNS, st.lists(RANDOM_PATHS, min_size=1, max_size=8))
@example("/**a**a**c", ["/aaac", "/aaa", "/a/a/ac"])
@example("/!(a)", ["/a", "/b", "/ab", ""])
@example("/x!(a)", ["/xa", "/xb", "/x"])
@example("/!(a)b", ["/ab", "/bb", "/b"])
def test_automaton_agrees_with_the_old_regex(pattern: str, paths: list[str]) -> None:
    # Given any small pattern of every syntax herd takes, When matching paths with the new
    # automaton (forced, and whichever matcher compile_glob picks), Then the answers are the old regex's.
    old = reference_regex(pattern)
    forced = _automaton(pattern)
    chosen = compile_glob(pattern)
    for path in paths:
        want = old.fullmatch(path) is not None
        assert forced.fullmatch(path) == want, (pattern, path)
        assert chosen.match(path) == (old.fullmatch(canonical_path(path)) is not None), (pattern, path)


def test_pathological_patterns_finish() -> None:
    # Given patterns that made the regex backtrack for hours, Then matching finishes (no timing asserted).
    name = "/" + "a" * 64
    assert not compile_glob("/" + "**a" * 12 + "**c").match(name)
    assert not compile_glob("/" + "*a" * 12 + "*c").match(name)
    assert match_nodes("/" + "**a" * 12 + "**c", [name, "/d/" + "a" * 64]) == []
    assert compile_glob("/" + "**a" * 200).match("/" + "a" * 1000)
    assert not compile_glob("/" + "**a" * 200 + "c").match("/" + "a" * 1000)
    assert compile_glob("/" + "!(**a**a**a**a**c)*" * 3).match("/" + "a" * 300)
    assert not compile_glob("/" + "+(a|aa)" * 30 + "c").match("/" + "a" * 500)


@pytest.mark.parametrize("bad", ["{" * 50_000, "(" * (MAX_NESTING + 1), "/" + "a" * 5000], ids=["braces-50000", "groups-65", "5000-chars"])
def test_deep_or_huge_patterns_are_refused_in_one_line(bad: str) -> None:
    # Given a glob nested 50,000 deep or longer than any path, Then InvalidGlob (not RecursionError).
    with pytest.raises(InvalidGlob) as info:
        compile_glob(bad)
    assert "invalid glob" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("pattern", ["/*/*", "/*", "/**", "/**/*.txt", "/dir/*.{csv,txt}", "/**.txt", "/?.txt",
                                     "/*/**/x*y", "/[ab]*/*"])
def test_common_globs_take_the_regex_fast_path(pattern: str) -> None:
    from scheduler.glob import _RegexMatcher

    assert isinstance(compile_glob(pattern).matcher, _RegexMatcher)


@pytest.mark.parametrize("pattern", ["/**a**a**c", "/*a*a*c", "/**/**", "/**a*", "/{a*,b}*", "/*[!x]*", "/+(a)*",
                                     "/" + "**a" * 12 + "**c"])
def test_globs_that_could_backtrack_take_the_automaton(pattern: str) -> None:
    assert isinstance(compile_glob(pattern).matcher, _Matcher)
