"""plan_layer: a re-run's plan made from the previous job's by re-planning only the nodes whose
files changed must be the plan plan_datums makes whole (the same datums, ids, hashes, skips and
order), and `layered`, which every reader resolves a stored layer with, must rebuild it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from scheduler.plan import plan_datums, plan_layer
from scheduler.records import JobPlan, PlannedDatum, layered
from storage import model
from storage.model import CommitRef, Manifest
from tests.fakes import file_trees
from tests.scheduler.test_plan import GLOBS, entry, index_of, spec_of

TREES = file_trees(st.text(alphabet="ab/", min_size=1, max_size=2).filter(lambda s: "/" not in s),
                   max_depth=3, max_files=10)


def job_plan(job_id: str, commit: str, datums: list[PlannedDatum], **fields: Any) -> JobPlan:
    return JobPlan(job_id=job_id, pipeline="p", pipeline_version=1, spec={}, salt="salt",
                   inputs=(CommitRef(repo="in", id=commit, branch="dev"),), datums=tuple(datums), **fields)


def edited(old: Manifest, added: list[str], removed: list[str], changed: list[str]) -> Manifest:
    files = {p: e for p, e in old.files.items() if p not in removed}
    files.update({p: entry(p + "v2") for p in changed if p in files})
    files.update({p: entry(p) for p in added if p not in files and not any(q.startswith(p + "/") for q in files)
                  and not any(p.startswith(q + "/") for q in files)})
    return Manifest(files=files)


@given(TREES, TREES, GLOBS, st.data())
@example(["/a", "/b/a"], ["/b/b"], "/*", None)
@example(["/a"], [], "/", None)
@example(["/b/a"], ["/a"], "/**", None)
def test_a_layer_gives_the_whole_plan(old_tree: list[str], more: list[str], glob: str, data: Any) -> None:
    # Given a job planned over a commit, and a later commit with files added, removed, changed
    spec = spec_of({"pfs": {"repo": "in", "branch": "dev", "glob": glob}})
    old = Manifest(files={p: entry(p) for p in old_tree})
    removed = [] if data is None else data.draw(st.lists(st.sampled_from(old_tree or ["/none"])))
    changed = [] if data is None else data.draw(st.lists(st.sampled_from(old_tree or ["/none"])))
    new = edited(old, more, removed, changed)
    first = plan_datums(spec, "p", "salt", {("in", "dev"): ("c1", old)}, None)
    done = [] if data is None else data.draw(st.lists(st.sampled_from([d.hash for d in first] or ["x"])))
    base = job_plan("j1", "c1", first)
    # When the next job's plan is made as a layer on it (however large the change)
    commits = {("in", "dev"): ("c2", new)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model, "LAYER_SHARE", 0)
        made = plan_layer(spec, "p", 1, "salt", commits, index_of(done), base, old.files)
    whole = plan_datums(spec, "p", "salt", commits, index_of(done))
    if not first:
        assert made is None  # nothing to build on (a failed input's plan is empty too)
        return
    # Then it is the whole plan, once each datum reads this job's commit
    assert made is not None
    datums, layer = made
    current = job_plan("j2", "c2", datums)
    assert [current.current(d) for d in datums] == whole
    # And the stored layer rebuilds it from the base's datums
    assert list(layered(base.datums, layer.dropped, layer.flipped, layer.added)) == datums
    assert layer.base == "j1" and layer.depth == 1
    assert all(d.inputs[0].commit == "c2" for d in layer.added)


def test_a_small_change_makes_a_small_layer() -> None:
    # Given 1,000 files processed, then one added and one changed
    spec = spec_of({"pfs": {"repo": "in", "branch": "dev", "glob": "/*"}})
    old = Manifest(files={f"/f{i:04d}": entry(str(i)) for i in range(1000)})
    new = Manifest(files={**old.files, "/f0005": entry("changed"), "/new": entry("new")})
    first = plan_datums(spec, "p", "salt", {("in", "dev"): ("c1", old)}, None)
    done = index_of([d.hash for d in first])
    commits = {("in", "dev"): ("c2", new)}
    # When the first re-run is planned; Then it is whole: every datum it keeps turns skipped
    assert plan_layer(spec, "p", 1, "salt", commits, done, job_plan("j1", "c1", first), old.files) is None
    # When a re-run builds on a plan that skipped them already
    skipped = plan_datums(spec, "p", "salt", {("in", "dev"): ("c1", old)}, done)
    made = plan_layer(spec, "p", 1, "salt", commits, done, job_plan("j1", "c1", skipped), old.files)
    # Then the layer holds the 2 new datums and drops the changed one, and they alone run
    assert made is not None
    datums, layer = made
    assert [d.inputs[0].path for d in layer.added] == ["/f0005", "/new"]
    assert (len(layer.dropped), len(layer.flipped), layer.depth) == (1, 0, 1)
    assert [d.inputs[0].path for d in datums if not d.skip] == ["/f0005", "/new"]
    # And the next one on it flips those two to skipped, one layer deeper
    second = job_plan("j2", "c2", datums, base="j1", depth=1)
    newer = Manifest(files={**new.files, "/newer": entry("newer")})
    made = plan_layer(spec, "p", 1, "salt", {("in", "dev"): ("c3", newer)},
                      index_of([d.hash for d in datums]), second, new.files)
    assert made is not None
    _, layer = made
    assert (len(layer.added), len(layer.dropped), len(layer.flipped), layer.depth) == (1, 0, 2, 2)


@pytest.mark.parametrize("why", ["version", "salt", "depth", "large", "cross"])
def test_plans_that_must_be_whole(why: str) -> None:
    # Given a base plan the next one cannot build on
    input_: dict[str, Any] = {"pfs": {"repo": "in", "branch": "dev", "glob": "/*"}}
    if why == "cross":
        input_ = {"cross": [input_, {"pfs": {"repo": "in", "branch": "dev", "glob": "/", "name": "all"}}]}
    spec = spec_of(input_)
    old = Manifest(files={f"/f{i}": entry(str(i)) for i in range(10)})
    new = Manifest(files={**old.files, "/new": entry("new")} if why != "large" else {"/only": entry("x")})
    first = plan_datums(spec_of({"pfs": {"repo": "in", "branch": "dev", "glob": "/*"}}), "p", "salt",
                        {("in", "dev"): ("c1", old)}, None)
    fields: dict[str, Any] = {"depth": model.MAX_LAYERS, "base": "j0"} if why == "depth" else {}
    base = job_plan("j1", "c1", first, **fields)
    version, salt = (2, "salt") if why == "version" else (1, "other") if why == "salt" else (1, "salt")
    # When the next job is planned; Then no layer is made: the plan is made and stored whole
    assert plan_layer(spec, "p", version, salt, {("in", "dev"): ("c2", new)}, None, base, old.files) is None
