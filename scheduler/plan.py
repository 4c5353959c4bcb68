"""A job's plan: its datums, and which of them an earlier job already processed. Pure."""

from __future__ import annotations

from collections.abc import Container

from scheduler.datums import Commits, Datum, datum_hash, expand, pfs_datums, sole_pfs
from scheduler.records import DatumIndex, PlannedDatum, PlannedInput
from scheduler.spec import PfsInput, PipelineSpec
from storage.collector import collector_paused


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
