"""Datum expansion (pfs / cross / union), ids and Pachyderm's datum hash."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from scheduler.datums import Datum, DatumInput, datum_hash, expand
from scheduler.spec import Input, parse_spec
from storage.errors import CommitNotFound
from storage.model import FileEntry, Manifest
from tests.fakes import file_trees

TREE = ["/a.txt", "/b.csv", "/.hidden", "/dir/c.txt", "/dir/sub/d.txt"]


def entry(content: str) -> FileEntry:
    return FileEntry(chunks=(hashlib.sha256(content.encode()).hexdigest(),), size=len(content))


def manifest(paths: list[str], salt: str = "") -> Manifest:
    return Manifest(files={p: entry(p + salt) for p in paths})


def inp(obj: dict[str, Any]) -> Input:
    return parse_spec({"pipeline": {"name": "p"}, "transform": {"cmd": ["x"]}, "input": obj}).input


def pfs(repo: str, glob: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"pfs": {"repo": repo, "glob": glob, **({"name": name} if name else {}), **extra}}


def commits(**repos: Manifest) -> dict[tuple[str, str], tuple[str, Manifest]]:
    return {(repo, "master"): (f"commit-{repo}", m) for repo, m in repos.items()}


# ---- pinned cases ---------------------------------------------------------------------------

def test_glob_star_gives_one_datum_per_top_level_node() -> None:
    # Given the worked-example tree, When expanding /*, Then /dir carries its whole subtree.
    datums = expand(inp(pfs("in", "/*")), commits(**{"in": manifest(TREE)}))
    assert [d.sort_key for d in datums] == [("/.hidden",), ("/a.txt",), ("/b.csv",), ("/dir",)]
    d = datums[3].inputs[0]
    assert sorted(d.files) == ["/dir/c.txt", "/dir/sub/d.txt"]  # keyed by full path
    assert (d.name, d.repo, d.branch, d.commit, d.glob_path) == ("in", "in", "master", "commit-in", "/dir")
    assert not d.is_file and datums[1].inputs[0].is_file


def test_root_glob_is_the_whole_repo() -> None:
    (datum,) = expand(inp(pfs("in", "/")), commits(**{"in": manifest(TREE)}))
    assert datum.sort_key == ("/",) and sorted(datum.inputs[0].files) == sorted(TREE)


def test_empty_commit_with_root_glob_is_one_empty_datum() -> None:
    # Pachyderm 1.x: the root always exists, so '/' on an empty commit is one datum.
    (datum,) = expand(inp(pfs("in", "/")), commits(**{"in": Manifest()}))
    assert datum.inputs[0].files == {} and datum.inputs[0].glob_path == "/"
    assert expand(inp(pfs("in", "/*")), commits(**{"in": Manifest()})) == []


def test_no_match_is_zero_datums() -> None:
    assert expand(inp(pfs("in", "/nope")), commits(**{"in": manifest(TREE)})) == []


def test_overlapping_double_star() -> None:
    datums = expand(inp(pfs("in", "/**")), commits(**{"in": manifest(TREE)}))
    assert len(datums) == 7
    assert sorted(next(d for d in datums if d.sort_key == ("/dir",)).inputs[0].files) == ["/dir/c.txt", "/dir/sub/d.txt"]


def test_empty_files_and_lazy_are_carried() -> None:
    (datum,) = expand(inp(pfs("in", "/", empty_files=True, lazy=True)), commits(**{"in": manifest(TREE)}))
    assert datum.inputs[0].empty_files and datum.inputs[0].lazy


def test_cross_first_child_varies_fastest_and_sorted_by_name() -> None:
    # Given children listed b then a, Then a (first by name) varies fastest in Pachyderm's order.
    spec = inp({"cross": [pfs("r", "/*", "b"), pfs("r", "/*", "a")]})
    raw = expand(spec, commits(r=manifest(["/x", "/y"])), sort=False)
    assert [d.sort_key for d in raw] == [("/x", "/x"), ("/y", "/x"), ("/x", "/y"), ("/y", "/y")]
    assert [i.name for i in raw[0].inputs] == ["a", "b"]
    # And the returned order is the sort by (path of a, path of b).
    assert [d.sort_key for d in expand(spec, commits(r=manifest(["/x", "/y"])))] == sorted(d.sort_key for d in raw)


def test_cross_with_an_empty_child_is_empty() -> None:
    spec = inp({"cross": [pfs("a", "/*"), pfs("b", "/*")]})
    assert expand(spec, commits(a=manifest(["/x"]), b=Manifest())) == []


def test_union_siblings_sharing_a_name_keep_both_datums() -> None:
    spec = inp({"union": [pfs("a", "/*", "x"), pfs("b", "/*", "x")]})
    datums = expand(spec, commits(a=manifest(["/f"]), b=manifest(["/f"])))
    assert sorted(d.inputs[0].repo for d in datums) == ["a", "b"]
    assert len({d.id for d in datums}) == 2  # same name and path, different repos: different ids
    assert datums[0].sort_key == datums[1].sort_key and datums[0].id < datums[1].id  # ties: by id


def test_identical_union_siblings_are_deduplicated() -> None:
    spec = inp({"union": [pfs("a", "/*"), pfs("a", "/*")]})
    assert len(expand(spec, commits(a=manifest(["/f", "/g"])))) == 2


def test_nested_cross_of_union() -> None:
    spec = inp({"cross": [{"union": [pfs("a", "/*"), pfs("b", "/*")]}, pfs("c", "/")]})
    datums = expand(spec, commits(a=manifest(["/1", "/2"]), b=manifest(["/3"]), c=manifest(["/z"])))
    assert len(datums) == 3
    assert all(len(d.inputs) == 2 and d.inputs[1].name == "c" for d in datums)


def test_missing_commit_is_an_error() -> None:
    with pytest.raises(CommitNotFound, match="'master' not found in repo 'other'"):
        expand(inp(pfs("other", "/")), commits(**{"in": Manifest()}))


def test_branch_is_part_of_the_commit_key() -> None:
    spec = inp({"pfs": {"repo": "in", "branch": "dev", "glob": "/*"}})
    (datum,) = expand(spec, {("in", "dev"): ("c9", manifest(["/f"]))})
    assert datum.inputs[0].commit == "c9" and datum.inputs[0].branch == "dev"


def test_id_is_length_prefixed_and_content_free() -> None:
    def one(name: str, path: str, content: str = "x") -> Datum:
        return Datum((DatumInput(name, "r", "master", "c", path, {path: entry(content)}),))
    assert one("ab", "/c").id != one("a", "b/c").id
    assert one("a", "/f", "old").id == one("a", "/f", "new").id
    assert datum_hash(one("a", "/f", "old"), "p", "s") != datum_hash(one("a", "/f", "new"), "p", "s")


def test_datum_hash_covers_pipeline_and_salt_not_commit() -> None:
    m = manifest(TREE)
    (d1,) = expand(inp(pfs("in", "/")), {("in", "master"): ("c1", m)})
    (d2,) = expand(inp(pfs("in", "/")), {("in", "master"): ("c2", m)})
    assert datum_hash(d1, "p", "s") == datum_hash(d2, "p", "s")  # same data in a later commit: skip
    assert datum_hash(d1, "p", "s") != datum_hash(d1, "q", "s")
    assert datum_hash(d1, "p", "s") != datum_hash(d1, "p", "t")


# ---- properties ---------------------------------------------------------------------------

TREES = file_trees(st.text(alphabet="abc", min_size=1, max_size=2), max_depth=3, max_files=12)
GLOBS = st.sampled_from(["/", "/*", "/*/*", "/**", "/a*", "/nope"])


@given(st.lists(st.tuples(TREES, GLOBS), min_size=1, max_size=3))
def test_cross_count_is_the_product(children: list[tuple[list[str], str]]) -> None:
    repos = {f"r{i}": manifest(tree) for i, (tree, _) in enumerate(children)}
    singles = [len(expand(inp(pfs(f"r{i}", g)), commits(**repos))) for i, (_, g) in enumerate(children)]
    crossed = expand(inp({"cross": [pfs(f"r{i}", g) for i, (_, g) in enumerate(children)]}), commits(**repos))
    product = 1
    for n in singles:
        product *= n
    assert len(crossed) == product
    assert len({d.id for d in crossed}) == product


@given(st.lists(st.tuples(TREES, GLOBS), min_size=1, max_size=3))
def test_union_is_the_concatenation(children: list[tuple[list[str], str]]) -> None:
    repos = {f"r{i}": manifest(tree) for i, (tree, _) in enumerate(children)}
    parts = [expand(inp(pfs(f"r{i}", g)), commits(**repos)) for i, (_, g) in enumerate(children)]
    union = inp({"union": [pfs(f"r{i}", g) for i, (_, g) in enumerate(children)]})
    raw = expand(union, commits(**repos), sort=False)
    assert [d.id for d in raw] == [d.id for part in parts for d in part]
    assert all(len(d.inputs) == 1 for d in raw)
    assert sorted(d.id for d in expand(union, commits(**repos))) == sorted(d.id for d in raw)


@given(TREES, GLOBS, st.randoms())
@example(TREE, "/*", None)
def test_ids_and_order_ignore_listing_order(tree: list[str], glob: str, rnd: Any) -> None:
    shuffled = list(tree)
    if rnd is not None:
        rnd.shuffle(shuffled)
    a = expand(inp(pfs("in", glob)), commits(**{"in": manifest(tree)}))
    b = expand(inp(pfs("in", glob)), commits(**{"in": manifest(shuffled)}))
    assert [d.id for d in a] == [d.id for d in b]
    assert [datum_hash(d, "p", "s") for d in a] == [datum_hash(d, "p", "s") for d in b]
    assert [d.sort_key for d in a] == sorted(d.sort_key for d in a)


@given(TREES.filter(lambda t: any(p.count("/") >= 2 for p in t)), st.data())
def test_directory_hash_changes_when_any_file_below_changes(tree: list[str], data: Any) -> None:
    # Given a directory match, When one file under it changes, Then the datum hash changes;
    # When a file outside it changes, Then it does not.
    deep = data.draw(st.sampled_from([p for p in tree if p.count("/") >= 2]))
    top = "/" + deep.split("/")[1]
    before = {d.sort_key: datum_hash(d, "p", "s") for d in expand(inp(pfs("in", "/*")), commits(**{"in": manifest(tree)}))}
    changed = Manifest(files={**manifest(tree).files, deep: entry("changed")})
    after = {d.sort_key: datum_hash(d, "p", "s") for d in expand(inp(pfs("in", "/*")), commits(**{"in": changed}))}
    assert before[(top,)] != after[(top,)]
    assert all(before[k] == after[k] for k in before if k != (top,))


@given(TREES.filter(lambda t: any(p.count("/") >= 2 for p in t)), st.data())
def test_directory_hash_changes_when_a_file_below_is_renamed(tree: list[str], data: Any) -> None:
    deep = data.draw(st.sampled_from([p for p in tree if p.count("/") >= 2]))
    files = dict(manifest(tree).files)
    files[deep + "x"] = files.pop(deep)  # same content, new name
    (before,) = expand(inp(pfs("in", "/")), commits(**{"in": manifest(tree)}))
    (after,) = expand(inp(pfs("in", "/")), commits(**{"in": Manifest(files=files)}))
    assert datum_hash(before, "p", "s") != datum_hash(after, "p", "s")


def test_100k_files_expand_into_one_datum_each_or_one_per_folder() -> None:
    # (how fast: bench/pipeline.py's "expand 100000 files into datums" row)
    files = {f"/d{i % 100:03d}/f{i:06d}.txt": FileEntry(chunks=(f"{i:064x}",), size=1) for i in range(100_000)}
    m = Manifest(files=files)
    datums = expand(inp(pfs("in", "/*/*")), commits(**{"in": m}))
    assert len(datums) == 100_000
    assert len({d.sort_key for d in datums}) == 100_000
    assert len(expand(inp(pfs("in", "/*")), commits(**{"in": m}))) == 100
