"""join and group inputs (Pachyderm 2.x semantics), glob captures, and the 1.4 `inputs` array:
expansion and spec validation (pure). The pipelines themselves run in tests/cli/test_cli_join_group.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.datums import Datum, datum_hash, expand
from scheduler.glob import captures, compile_glob, expand_captures
from scheduler.spec import OLD_INPUTS_NOTE, parse_spec, spec_notes
from storage.errors import InvalidSpec
from storage.model import Manifest
from tests.scheduler.test_datums import commits, inp, manifest, pfs

# Readings per sensor and month, labels per sensor: joined on the sensor id.
READINGS = ["/s1-jan.txt", "/s1-feb.txt", "/s2-jan.txt", "/s3-jan.txt"]
LABELS = ["/s1.csv", "/s2.csv", "/s4.csv"]


def join(*, readings_outer: bool = False, labels_outer: bool = False) -> dict[str, Any]:
    return {"join": [
        pfs("readings", "/(*)-*.txt", join_on="$1", outer_join=readings_outer),
        pfs("labels", "/(*).csv", join_on="$1", outer_join=labels_outer),
    ]}


def shape(datums: list[Datum]) -> list[list[tuple[str, str, str]]]:
    return [[(i.name, i.glob_path, i.join_on or i.group_by) for i in d.inputs] for d in datums]


def sensors(readings: list[str] = READINGS, labels: list[str] = LABELS) -> Any:
    return commits(readings=manifest(readings), labels=manifest(labels))


# ---- captures ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("glob", "path", "groups"), [
    ("/(*)-*.txt", "/s1-jan.txt", ("s1",)),
    ("/(*)-(*).txt", "/a-b-c.txt", ("a-b", "c")),  # leftmost, greedy: as a regex
    ("/(*)/(*)", "/dir/file", ("dir", "file")),
    ("(*).csv", "/x.csv", ("x",)),  # normalised: a leading '/' is added
    ("/@(a|b)*/(*)", "/bz/q", ("b", "q")),  # ohmyglob's @( is a group too
    ("/{x,y}-(*)", "/y-1", ("1",)),  # braces are not groups
    ("/plain.txt", "/plain.txt", ()),
    ("/(*).csv", "/x.txt", None),  # no match
    ("/(*)", "/dir/file", None),  # a capture never crosses '/'
])
def test_captures(glob: str, path: str, groups: tuple[str, ...] | None) -> None:
    assert captures(glob, path) == groups
    assert captures(compile_glob(glob), path) == groups


@pytest.mark.parametrize(("template", "expected"), [
    ("$1", "a"), ("${2}", "b"), ("$1-$2", "a-b"), ("${1}x", "ax"),
    ("$1x", ""),  # Go: $1x is ${1x}, not a group
    ("$3", ""), ("$0", "/a/b"), ("$$1", "$1"), ("key", "key"), ("cost $", "cost $"), ("", ""),
])
def test_expand_captures_as_go_regexp_expand(template: str, expected: str) -> None:
    assert expand_captures(template, "/a/b", ("a", "b")) == expected


def test_captures_on_a_hostile_pattern_only_run_after_the_automaton_matched() -> None:
    # The backtracking regex never sees a path the pattern does not match: no exponential miss.
    glob = "/" + "**a" * 30 + "(*)c"
    assert captures(glob, "/" + "a" * 5000) is None


# ---- join -------------------------------------------------------------------------------------

def test_inner_join_crosses_each_key_present_in_every_child() -> None:
    datums = expand(inp(join()), sensors())
    assert shape(datums) == [
        [("labels", "/s1.csv", "s1"), ("readings", "/s1-feb.txt", "s1")],
        [("labels", "/s1.csv", "s1"), ("readings", "/s1-jan.txt", "s1")],
        [("labels", "/s2.csv", "s2"), ("readings", "/s2-jan.txt", "s2")],
    ]  # s3 (no label) and s4 (no readings) are dropped


def test_outer_join_keeps_the_unmatched_datums_of_the_outer_child_alone() -> None:
    datums = expand(inp(join(readings_outer=True)), sensors())
    assert [("readings", "/s3-jan.txt", "s3")] in shape(datums)
    assert len(datums) == 4 and not any(i.glob_path == "/s4.csv" for d in datums for i in d.inputs)
    both = expand(inp(join(readings_outer=True, labels_outer=True)), sensors())
    assert len(both) == 5 and [("labels", "/s4.csv", "s4")] in shape(both)


def test_outer_join_of_three_keeps_only_the_outer_children_that_have_the_key() -> None:
    # 2.x's rule: a key missing from some child yields the cross of the outer children that
    # have it, so the inner child's datums never appear in a partial match.
    spec = {"join": [
        pfs("a", "/(*)", join_on="$1", outer_join=True),
        pfs("b", "/(*)", join_on="$1"),
        pfs("c", "/(*)", join_on="$1", outer_join=True),
    ]}
    got = expand(inp(spec), commits(a=manifest(["/k", "/x"]), b=manifest(["/k", "/x", "/y"]), c=manifest(["/k"])))
    assert shape(got) == [
        [("a", "/k", "k"), ("b", "/k", "k"), ("c", "/k", "k")],
        [("a", "/x", "x")],  # b has x too, but b is not outer; c lacks x
    ]  # y: only b has it, and b is not outer


def test_join_keys_of_two_captures() -> None:
    spec = {"join": [pfs("a", "/(*)/(*).txt", join_on="$1-$2"), pfs("b", "/(*)_(*)", join_on="$1-$2")]}
    got = expand(inp(spec), commits(a=manifest(["/x/1.txt", "/x/2.txt"]), b=manifest(["/x_2", "/y_1"])))
    assert shape(got) == [[("a", "/x/2.txt", "x-2"), ("b", "/x_2", "x-2")]]


def test_join_child_with_no_match_joins_nothing_and_an_empty_repo_is_no_error() -> None:
    assert expand(inp(join()), sensors(labels=[])) == []
    assert len(expand(inp(join(readings_outer=True)), sensors(labels=[]))) == 4


def test_join_nests_in_cross_and_union() -> None:
    crossed = expand(inp({"cross": [join(), pfs("model", "/")]}), {**sensors(), **commits(model=manifest(["/m"]))})
    assert len(crossed) == 3 and all({i.name for i in d.inputs} == {"labels", "readings", "model"} for d in crossed)
    unioned = expand(inp({"union": [join(), pfs("model", "/*")]}), {**sensors(), **commits(model=manifest(["/m"]))})
    assert len(unioned) == 4


def test_join_datum_ids_and_hashes_are_stable_across_commits() -> None:
    # Given a join planned on one commit of each repo
    before = {d.id: datum_hash(d, "p", "salt") for d in expand(inp(join()), sensors())}
    # When the readings repo gains a sensor with no label and labels gain an unrelated file
    after_datums = expand(inp(join()), sensors(READINGS + ["/s9-jan.txt"], LABELS + ["/s8.csv"]))
    after = {d.id: datum_hash(d, "p", "salt") for d in after_datums}
    # Then every datum keeps its id and hash: the next job skips them all
    assert after == before
    # And a changed file changes only its datum's hash, never an id
    changed = commits(readings=manifest(READINGS), labels=Manifest(files={
        **manifest(LABELS).files, "/s2.csv": manifest(["/s2.csv"], salt="new").files["/s2.csv"]}))
    rehashed = {d.id: datum_hash(d, "p", "salt") for d in expand(inp(join()), changed)}
    assert rehashed.keys() == before.keys()
    assert [i for i in before if before[i] != rehashed[i]] == [
        d.id for d in expand(inp(join()), sensors()) if d.inputs[0].glob_path == "/s2.csv"]


# ---- group ------------------------------------------------------------------------------------

def test_group_by_holds_every_matching_node_of_every_child() -> None:
    spec = {"group": [pfs("readings", "/(*)-*.txt", group_by="$1"), pfs("labels", "/(*).csv", group_by="$1")]}
    got = expand(inp(spec), sensors())
    assert shape(got) == [
        [("labels", "/s1.csv", "s1"), ("readings", "/s1-feb.txt", "s1"), ("readings", "/s1-jan.txt", "s1")],
        [("labels", "/s2.csv", "s2"), ("readings", "/s2-jan.txt", "s2")],
        [("readings", "/s3-jan.txt", "s3")],
        [("labels", "/s4.csv", "s4")],
    ]


def test_group_by_one_repo_on_the_second_capture() -> None:
    spec = {"group": [pfs("readings", "/(*)-(*).txt", group_by="$2")]}
    got = expand(inp(spec), sensors())
    assert [[i.glob_path for i in d.inputs] for d in got] == [["/s1-feb.txt"], ["/s1-jan.txt", "/s2-jan.txt", "/s3-jan.txt"]]
    assert {i.group_by for i in got[1].inputs} == {"jan"} and got[1].inputs[0].join_on == ""


def test_group_ids_change_only_for_the_group_that_changed() -> None:
    spec = inp({"group": [pfs("readings", "/(*)-*.txt", group_by="$1")]})
    before = {d.sort_key: d.id for d in expand(spec, sensors())}
    after = {d.sort_key: d.id for d in expand(spec, sensors(READINGS + ["/s2-feb.txt"]))}
    assert {k: v for k, v in after.items() if k in before} == {k: v for k, v in before.items() if k in after}
    assert ("/s2-feb.txt", "/s2-jan.txt") in after and ("/s2-jan.txt",) in before


# ---- properties -------------------------------------------------------------------------------

names = st.lists(st.sampled_from(["k1", "k2", "k3", "k4"]), max_size=4, unique=True)


@given(a=names, b=names, a_outer=st.booleans(), b_outer=st.booleans())
def test_join_matches_a_reference_model(a: list[str], b: list[str], a_outer: bool, b_outer: bool) -> None:
    spec = {"join": [pfs("a", "/(*).x", join_on="$1", outer_join=a_outer), pfs("b", "/(*).y", join_on="$1", outer_join=b_outer)]}
    got = {tuple(sorted((i.name, i.join_on) for i in d.inputs)) for d in expand(
        inp(spec), commits(a=manifest([f"/{k}.x" for k in a]), b=manifest([f"/{k}.y" for k in b])))}
    want: set[tuple[tuple[str, str], ...]] = {(("a", k), ("b", k)) for k in set(a) & set(b)}
    want |= {(("a", k),) for k in set(a) - set(b) if a_outer} | {(("b", k),) for k in set(b) - set(a) if b_outer}
    assert got == want


@given(files=st.lists(st.from_regex(re.compile(r"/[ab]-[0-9]"), fullmatch=True), max_size=8, unique=True))
def test_group_partitions_the_matched_nodes(files: list[str]) -> None:
    got = expand(inp({"group": [pfs("in", "/(*)-*", group_by="$1")]}), commits(**{"in": manifest(files)}))
    nodes = [i.glob_path for d in got for i in d.inputs]
    assert sorted(nodes) == sorted(files)  # each node in exactly one datum
    assert all(len({i.group_by for i in d.inputs}) == 1 for d in got)
    assert len({d.id for d in got}) == len(got)


# ---- spec validation --------------------------------------------------------------------------

def spec_of(input_: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    return {"pipeline": {"name": "p"}, "transform": {"cmd": ["sh"]}, **({"input": input_} if input_ else {}), **top}


@pytest.mark.parametrize(("input_", "message"), [
    ({"join": [pfs("a", "/(*)")]}, "input 'a' of a join needs 'join_on'"),
    ({"group": [pfs("a", "/(*)", join_on="$1")]}, "input 'a' of a group needs 'group_by'"),
    ({"join": [{"cross": [pfs("a", "/(*)", join_on="$1")]}]}, "the inputs of a join must be pfs inputs, got a cross"),
    ({"group": [{"union": [pfs("a", "/(*)", group_by="$1")]}]}, "the inputs of a group must be pfs inputs"),
    ({"join": [pfs("a", "/(*)", join_on="$1"), pfs("a", "/(*)", join_on="$1")]}, 'name "a" was used more than once'),
    ({"cross": [join(), pfs("labels", "/")]}, 'name "labels" was used more than once'),
    ({"join": []}, "input.join"),
    ({"join": [pfs("a", "/(*)", join_on="$1")], "group": [pfs("b", "/(*)", group_by="$1")]}, "got join, group"),
    ({"join": [pfs("a", "/(", join_on="$1")]}, "unbalanced '('"),
])
def test_bad_join_and_group_inputs_are_refused_by_name(input_: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=re.escape(message)):
        parse_spec(spec_of(input_))


def test_join_and_group_specs_round_trip_in_canonical_form() -> None:
    for input_ in (join(readings_outer=True), {"group": [pfs("readings", "/(*)-*.txt", groupBy="$1")]}):
        spec = parse_spec(spec_of(input_))
        assert parse_spec(json.loads(spec.canonical_bytes())) == spec
    leaf = next(parse_spec(spec_of({"join": [pfs("a", "/(*)", joinOn="$1", outerJoin=True)]})).input.leaves())
    assert leaf.join_on == "$1" and leaf.outer_join


# ---- the 1.4 `inputs` array -------------------------------------------------------------------

FRUIT_FILTER = {  # Pachyderm v1.4.8 doc/examples/fruit_stand/pipeline.json, first spec
    "pipeline": {"name": "filter"},
    "transform": {"cmd": ["sh"], "stdin": ["true"]},
    "parallelism_spec": {"strategy": "CONSTANT", "constant": 1},
    "inputs": [{"name": "data", "repo": {"name": "data"}, "branch": "master", "glob": "/*"}],
}


def test_old_inputs_array_is_the_cross_of_its_entries() -> None:
    spec = parse_spec(FRUIT_FILTER)
    assert spec.input.kind == "cross" and [c.pfs for c in spec.input.children][0] is not None
    leaf = spec.input.children[0].pfs
    assert leaf is not None and (leaf.name, leaf.repo, leaf.branch, leaf.glob) == ("data", "data", "master", "/*")
    assert spec_notes(FRUIT_FILTER) == [OLD_INPUTS_NOTE] and spec_notes(spec_of(pfs("a", "/"))) == []
    # Stored in the new form: the canonical spec has no trace of `inputs`, and re-reads the same.
    again = json.loads(spec.canonical_bytes())
    assert "inputs" not in again and parse_spec(again) == spec and spec_notes(again) == []


def test_old_inputs_array_of_two_entries_crosses_them() -> None:
    raw = spec_of(inputs=[
        {"repo": "images", "glob": "/*", "lazy": True},
        {"name": "m", "repo": {"name": "model"}, "glob": "/", "from": {"repo": {"name": "model"}, "id": "c0ffee"}},
    ])
    spec = parse_spec(raw)
    leaves = list(spec.input.leaves())
    assert [(x.name, x.repo, x.branch, x.lazy, x.from_commit) for x in leaves] == [
        ("images", "images", "master", True, None), ("m", "model", "master", False, "c0ffee")]
    got = expand(spec.input, commits(images=manifest(["/1", "/2"]), model=manifest(["/w"])))
    assert len(got) == 2 and all({i.name for i in d.inputs} == {"images", "m"} for d in got)


@pytest.mark.parametrize(("top", "message"), [
    ({"inputs": []}, "inputs: expected a non-empty list"),
    ({"inputs": {"repo": "a"}}, "inputs: expected a non-empty list"),
    ({"inputs": ["a"]}, "inputs[0]: expected an object"),
    ({"inputs": [{"repo": "a", "glob": "/", "join_on": "$1"}]}, "unknown field 'inputs[0].join_on'"),
    ({"inputs": [{"glob": "/"}]}, "'inputs[0].repo' is required"),
    ({"inputs": [{"repo": {"name": "a"}}]}, "'inputs[0].glob' is required"),
    ({"inputs": [{"repo": "a", "glob": "/"}], "input": pfs("a", "/")}, "set only one of 'input' and 'inputs'"),
    ({"inputs": [{"repo": "a", "glob": "/"}, {"repo": "a", "glob": "/*"}]}, 'name "a" was used more than once'),
    ({"inputs": [{"repo": "a/b", "glob": "/"}]}, "invalid name 'a/b'"),
])
def test_bad_old_inputs_are_refused_by_name(top: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=re.escape(message)):
        parse_spec(spec_of(**top))


# ---- captures against the backtracking regex ---------------------------------------------------

TOKENS = ["a", "b", "/", "*", "**", "?", "[ab]", "{a,b/}", "(*)", "(a|b*)", "(**)", "*(a)", "+(b|a)", "?(a)", "@(a|)",
          "+((a)|b)", "*((b)|a|)", "(*(a)b)", "?((a)*)"]


@given(pattern=st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6).map(lambda t: "/" + "".join(t)),
       path=st.text(alphabet="ab/", max_size=8).map(lambda p: "/" + p))
def test_captures_split_a_path_as_the_reference_regex_does(pattern: str, path: str) -> None:
    from scheduler.glob import canonical_path, reference_regex

    node = canonical_path(path)
    if node != path.rstrip("/") or "//" in path:
        return  # not a node path
    found = reference_regex(pattern).fullmatch(node)
    assert captures(pattern, node) == (found.groups(default="") if found is not None else None)


def test_captures_stay_linear_where_backtracking_explores_every_split() -> None:
    # Python's re takes minutes on this matching path (every split of the a's is tried before
    # the one that works); the Pike VM walks the path once per instruction.
    path = "/aaaac" + "a" * 4000
    assert captures("/(**)a**a**a**a**c**", path) == ("",)


def test_captures_past_a_negated_group_are_refused_not_guessed() -> None:
    from storage.errors import InvalidGlob

    with pytest.raises(InvalidGlob, match="'!\\(' group"):
        captures("/!(x)-(*)", "/a-b")


def test_a_key_from_a_glob_with_a_negated_group_is_refused() -> None:
    with pytest.raises(InvalidSpec, match=re.escape("cannot key on a glob with a '!(' group")):
        parse_spec(spec_of({"join": [pfs("a", "/!(x)-(*)", join_on="$2")]}))
