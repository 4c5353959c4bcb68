"""A job's plan: its datums, and which of them an earlier job already processed. Pure."""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass

from scheduler.datums import Commits, Datum, changed_nodes, datum_hash, expand, pfs_datums, sole_pfs
from scheduler.records import DatumIndex, JobPlan, PlannedDatum, PlannedInput, layered, worth_a_layer
from scheduler.spec import PfsInput, PipelineSpec
from storage.collector import collector_paused
from storage.model import FileEntry


@dataclass(frozen=True)
class Layer:
    """What a plan changes in its base plan's datums (JobPlan.base, dropped, flipped, datums)."""

    base: str
    depth: int
    dropped: tuple[str, ...]
    flipped: tuple[str, ...]
    added: tuple[PlannedDatum, ...]


def plan_datums(
    spec: PipelineSpec, pipeline: str, salt: str, commits: Commits, previous: DatumIndex | None
) -> list[PlannedDatum]:
    """Every datum of the job, in datum order; `skip` where `previous` holds its outputs.

    A datum is skipped when its hash (inputs' paths and content, pipeline name, salt) is in the
    index the previous job left: the same inputs were already processed by this pipeline with
    the same salt, so its stored outputs are reused (Pachyderm 1.5.1+).
    """
    done = previous.entries if previous is not None else {}
    # Planning allocates a few objects per file and frees none: the cyclic collector would
    # rescan the growing heap again and again (half the time for 100,000 files) for nothing.
    with collector_paused():
        leaf = sole_pfs(spec.input)
        if leaf is not None:  # the common spec, with a faster path to the same plan
            return _planned_pfs(leaf, pipeline, salt, commits, done)
        return expanded_plan(spec, pipeline, salt, commits, done)


def plan_layer(
    spec: PipelineSpec, pipeline: str, version: int, salt: str, commits: Commits, previous: DatumIndex | None,
    base: JobPlan, base_files: Mapping[str, FileEntry],
) -> tuple[list[PlannedDatum], Layer] | None:
    """The plan `plan_datums` gives, made from `base` (an earlier plan of this pipeline, over the
    files `base_files` of its input commit) by re-planning only the nodes whose files changed;
    with the layer to store it as. None when the plan must be made and stored whole: an input
    other than one pfs input, a base of another pipeline version or salt, a chain of layers already
    storage.model.MAX_LAYERS long, or a change too large for a layer to pay.

    The same datums as plan_datums by construction (tests/scheduler/test_plan_layer.py checks
    it): a node none of whose files changed has the same id and hash in both commits."""
    leaf = sole_pfs(spec.input)
    if (leaf is None or base.pipeline != pipeline or base.pipeline_version != version or base.salt != salt
            or not base.datums or not worth_a_layer(base.depth, 0, len(base.datums))):
        return None
    done = previous.entries if previous is not None else {}
    with collector_paused():
        commit, manifest = commits[(leaf.repo, leaf.branch)]
        nodes, present = changed_nodes(leaf, base_files, manifest.files)
        if not worth_a_layer(base.depth, len(nodes), len(base.datums)):  # each is a datum gone or made
            return None
        _, rows = pfs_datums(leaf, commits, pipeline, salt, present)
        name, repo, branch, empty = leaf.name, leaf.repo, leaf.branch, leaf.empty_files
        added = tuple(
            PlannedDatum(datum_id, hash_, (PlannedInput(name, repo, branch, commit, node, files, empty),),
                         hash_ in done)
            for datum_id, hash_, node, files in rows
        )
        dropped: list[str] = []
        flipped: list[str] = []  # carried datums whose skip changes: run by the base, reused now
        for datum in base.datums:
            if datum.inputs[0].path in nodes:
                dropped.append(datum.id)
            elif datum.skip != (datum.hash in done):
                flipped.append(datum.id)
        if not worth_a_layer(base.depth, len(dropped) + len(flipped) + len(added), len(base.datums)):
            return None
        datums = layered(base.datums, dropped, flipped, added)
    return list(datums), Layer(base.job_id, base.depth + 1, tuple(dropped), tuple(flipped), added)


def expanded_plan(
    spec: PipelineSpec, pipeline: str, salt: str, commits: Commits, done: Container[str]
) -> list[PlannedDatum]:
    """The plan by definition: expand() the input tree, then hash each datum."""
    return [_planned(d, datum_hash(d, pipeline, salt), done) for d in expand(spec.input, commits)]


def _planned_pfs(
    pfs: PfsInput, pipeline: str, salt: str, commits: Commits, done: Container[str]
) -> list[PlannedDatum]:
    commit, rows = pfs_datums(pfs, commits, pipeline, salt)
    name, repo, branch, empty = pfs.name, pfs.repo, pfs.branch, pfs.empty_files
    return [
        PlannedDatum(datum_id, hash_, (PlannedInput(name, repo, branch, commit, node, files, empty),), hash_ in done)
        for datum_id, hash_, node, files in rows
    ]


def _planned(datum: Datum, hash_: str, done: Container[str]) -> PlannedDatum:
    inputs = tuple(
        PlannedInput(
            i.name, i.repo, i.branch, i.commit, i.glob_path, dict(i.files), i.empty_files, i.join_on, i.group_by,
        )
        for i in datum.inputs
    )
    return PlannedDatum(datum.id, hash_, inputs, hash_ in done)


def input_branches(spec: PipelineSpec) -> set[tuple[str, str]]:
    """Every (repo, branch) the pipeline reads: a commit on any of them owes a job."""
    return {(leaf.repo, leaf.branch) for leaf in spec.input.leaves()}
