"""plan_datums: the plan of a lone pfs (or cron) input takes a faster path than expand() (no
Datum objects, shared fields framed once); it must give the very plan expand() defines, and the
datum ids and hashes must stay the digest_fields of their fields (stored plans and indexes hold
them: a different digest would rerun every datum after an upgrade)."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from scheduler.datums import Datum, DatumInput, datum_hash, expand, node_hash
from scheduler.plan import expanded_plan, plan_datums
from scheduler.records import DatumIndex, IndexEntry
from scheduler.spec import PipelineSpec, parse_spec
from storage.model import FileEntry, Manifest, digest_fields
from tests.fakes import file_trees

TREE = ["/a.txt", "/b.csv", "/.hidden", "/dir/c.txt", "/dir/sub/d.txt"]
TREES = file_trees(st.text(alphabet="abé/", min_size=1, max_size=2).filter(lambda s: "/" not in s),
                   max_depth=3, max_files=12)
GLOBS = st.sampled_from(["/", "/*", "/*/*", "/**", "/a*", "/*/a", "/{a,b}*", "/nope", "/a"])
NAMES = st.text(min_size=1, max_size=8)  # any Unicode: the framing is over UTF-8 bytes


def entry(content: str, chunks: int = 1) -> FileEntry:
    digests = tuple(hashlib.sha256(f"{content}{i}".encode()).hexdigest() for i in range(chunks))
    return FileEntry(chunks=digests, size=len(content))


def manifest(paths: list[str], chunks: int = 1) -> Manifest:
    return Manifest(files={p: entry(p, chunks) for p in paths})


def spec_of(input_: dict[str, Any]) -> PipelineSpec:
    return parse_spec({"pipeline": {"name": "p"}, "transform": {"cmd": ["x"]}, "input": input_})


def index_of(hashes: list[str]) -> DatumIndex:
    return DatumIndex(job_id="j0", entries={h: IndexEntry(sort_key=("/x",)) for h in hashes})


# ---- the fast path gives expand()'s plan ----------------------------------------------------


@given(TREES, GLOBS, st.booleans(), st.integers(1, 2), st.data())
@example(TREE, "/*", False, 1, None)
@example([], "/", False, 1, None)  # an empty commit: one datum, the root, with no files
def test_lone_pfs_plan_equals_the_expanded_plan(tree: list[str], glob: str, empty_files: bool, chunks: int,
                                                data: Any) -> None:
    # Given a pfs input over a commit, and an index holding some of the datums' hashes
    spec = spec_of({"pfs": {"repo": "in", "branch": "dev", "glob": glob, "empty_files": empty_files}})
    commits = {("in", "dev"): ("c1", manifest(tree, chunks))}
    by_definition = expanded_plan(spec, "p", "salt", commits, {})
    done = [] if data is None else data.draw(st.lists(st.sampled_from([d.hash for d in by_definition] or ["x"])))
    # When it is planned; Then the plan is the one expand() defines, skips included
    expected = expanded_plan(spec, "p", "salt", commits, index_of(done).entries)
    assert plan_datums(spec, "p", "salt", commits, index_of(done)) == expected
    assert sorted(d.id for d in expected) == sorted(d.id for d in expand(spec.input, commits))


@given(NAMES, NAMES, NAMES, NAMES)
def test_lone_pfs_plan_equals_the_expanded_plan_for_any_names(name: str, branch: str, pipeline: str,
                                                              salt: str) -> None:
    spec = spec_of({"pfs": {"repo": "in", "name": "in", "glob": "/*"}})
    pfs = spec.input.pfs
    assert pfs is not None
    # names the spec would refuse still hash the same way on both paths
    odd = spec.model_copy(update={"input": spec.input.model_copy(
        update={"pfs": pfs.model_copy(update={"name": name, "branch": branch})})})
    commits = {("in", branch): ("c1", manifest(TREE))}
    assert plan_datums(odd, pipeline, salt, commits, None) == expanded_plan(odd, pipeline, salt, commits, {})


def test_cron_plan_equals_the_expanded_plan() -> None:
    spec = spec_of({"cron": {"name": "tick", "spec": "@every 1m"}})
    assert spec.input.cron is not None
    repo = spec.input.cron.repo
    ticks = manifest(["/2026-12-02T01:00:00Z", "/2026-12-02T01:01:00Z"])
    commits = {(repo, "master"): ("c1", ticks)}
    plan = plan_datums(spec, "p", "salt", commits, None)
    assert [d.inputs[0].path for d in plan] == sorted(ticks.files)
    assert plan == expanded_plan(spec, "p", "salt", commits, {})


def test_the_root_datum_owns_a_copy_of_the_files() -> None:
    # Given the glob "/": the datum holds every file of the commit
    m = manifest(TREE)
    (datum,) = plan_datums(spec_of({"pfs": {"repo": "in", "glob": "/"}}), "p", "s", {("in", "master"): ("c", m)}, None)
    # Then its mapping is its own: changing it leaves the commit's manifest as it was
    datum.inputs[0].files.clear()
    assert len(m.files) == len(TREE)


def test_other_inputs_still_take_the_expanded_path() -> None:
    spec = spec_of({"cross": [{"pfs": {"repo": "a", "glob": "/*"}}, {"pfs": {"repo": "b", "glob": "/*"}}]})
    commits = {("a", "master"): ("ca", manifest(["/x", "/y"])), ("b", "master"): ("cb", manifest(["/z"]))}
    plan = plan_datums(spec, "p", "s", commits, None)
    assert plan == expanded_plan(spec, "p", "s", commits, {}) and len(plan) == 2


# ---- ids and hashes are digest_fields over their fields -------------------------------------


@given(st.lists(st.tuples(NAMES, NAMES, NAMES, NAMES), min_size=1, max_size=3, unique_by=lambda t: t[0]),
       NAMES, NAMES, st.integers(1, 3))
def test_id_and_hash_are_digest_fields_of_their_fields(
    inputs: list[tuple[str, str, str, str]], pipeline: str, salt: str, chunks: int
) -> None:
    # Given a datum of one to three inputs, each a file node (its path under any name)
    parts = tuple(
        DatumInput(name, repo, branch, "c", "/" + path, {"/" + path: entry(path, chunks)})
        for name, repo, branch, path in inputs
    )
    datum = Datum(parts)
    ordered = sorted(parts, key=lambda i: i.name)
    # Then the id and hash are the length-prefixed sha256 of the documented fields
    assert datum.id == digest_fields(x for i in ordered for x in (i.name, i.repo, i.branch, i.glob_path))
    fields = [x for i in ordered for x in (i.name, i.glob_path, i.files[i.glob_path].hash)]
    assert datum_hash(datum, pipeline, salt) == digest_fields([*fields, pipeline, salt])


def test_a_directory_node_hash_is_over_relative_paths_and_hashes() -> None:
    files = manifest(["/dir/c.txt", "/dir/sub/d.txt"]).files
    expected = digest_fields(["/c.txt", files["/dir/c.txt"].hash, "/sub/d.txt", files["/dir/sub/d.txt"].hash])
    assert node_hash("/dir", files) == expected
    assert node_hash("/dir/c.txt", {"/dir/c.txt": files["/dir/c.txt"]}) == files["/dir/c.txt"].hash


def test_long_fields_are_framed_like_short_ones() -> None:
    # Fields of 4,096 UTF-8 bytes and more take the other branch of the length framing.
    for size in (4095, 4096, 4097, 70_000):
        path = "/" + "é" * (size // 2)
        datum = Datum((DatumInput("in", "r", "master", "c", path, {path: entry("x")}),))
        assert datum.id == digest_fields(["in", "r", "master", path])
        assert datum_hash(datum, "p" * size, "s") == digest_fields(["in", path, entry("x").hash, "p" * size, "s"])
        # pfs_datums frames the path and the content hash itself: the same bytes, either branch.
        commits = {("r", "master"): ("c", manifest([path, path + "/f", "/a/" + "b" * size], chunks=2))}
        for glob in ("/*", "/**"):
            spec = spec_of({"pfs": {"name": "in", "repo": "r", "glob": glob}})
            assert plan_datums(spec, "p", "s", commits, None) == expanded_plan(spec, "p", "s", commits, {})
