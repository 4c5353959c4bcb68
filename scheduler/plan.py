"""A job's plan: its datums, and which of them an earlier job already processed. Pure."""

from __future__ import annotations

import gc
from collections.abc import Container

from scheduler.datums import Commits, Datum, datum_hash, expand
from scheduler.records import DatumIndex, PlannedDatum, PlannedInput
from scheduler.spec import PipelineSpec


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
    paused = gc.isenabled()
    gc.disable()
    try:
        return [_planned(d, datum_hash(d, pipeline, salt), done) for d in expand(spec.input, commits)]
    finally:
        if paused:
            gc.enable()


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
