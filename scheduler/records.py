"""Pipeline records and the job plan, as stored. Pure models, no I/O."""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from pydantic import Field

from storage import model
from storage.model import CommitRef, FileEntry, LenientRecord, digest_fields


class PipelineInfo(LenientRecord):
    """The mutable pipeline record (compare-and-set): current version, salt, stopped."""

    name: str
    version: int
    spec: dict[str, Any]
    salt: str
    created: datetime
    updated: datetime
    stopped: bool = False
    # Jobs of this version are made for input commits finished after this instant, plus (when
    # `baseline`) one job on the inputs as they were at this instant (Pachyderm 1.5.1+
    # update-pipeline). None for version 1: every commit already on the inputs gets a job,
    # oldest first (Pachyderm 1.4).
    since: datetime | None = None
    # False when the update found the pipeline stopped (Pachyderm 1.9 TestUpdateStoppedPipeline):
    # `since` is then the trigger time of the last job the pipeline finished, and the new version
    # owes one job per later commit only, never a rerun of inputs the old version already ran.
    baseline: bool = True
    generation: int = 0
    ignored_fields: tuple[str, ...] = ()
    # Random, made with the record and kept by every update: part of each job id, so a pipeline
    # deleted and made again with the same salt and inputs never meets its old jobs' ids in a
    # process that kept their plans or results. Empty in records an older herd made: their job
    # ids are computed as before.
    job_nonce: str = ""


# Plain dataclasses, not pydantic models: a plan can hold 100,000 datums, and building that many
# models costs more than the rest of planning. Pydantic still validates them when a plan is read.
# Frozen, because the process's caches share plans between jobs; but a frozen dataclass's own
# __init__ sets each field through object.__setattr__, which made building the plan's objects
# about 45% of planning's CPU (100,000 files). Theirs set the slots through their descriptors
# (_SLOTS, made once), a third faster; tests/scheduler/test_records.py checks they match the fields.
@dataclass(frozen=True, slots=True, init=False)
class PlannedInput:
    name: str
    repo: str
    branch: str
    commit: str
    path: str  # the glob match: a file, a directory, or "/" for the whole commit
    files: dict[str, FileEntry] = field(default_factory=dict)
    empty_files: bool = False
    join_on: str = ""  # the key of a join's (group's) input: PACH_DATUM_<name>_JOIN_ON (_GROUP_BY)
    group_by: str = ""

    def __init__(
        self, name: str, repo: str, branch: str, commit: str, path: str, files: dict[str, FileEntry] | None = None,
        empty_files: bool = False, join_on: str = "", group_by: str = "",
    ) -> None:
        set_name, set_repo, set_branch, set_commit, set_path, set_files, set_empty, set_join, set_group = (
            _SLOTS[PlannedInput])
        set_name(self, name)
        set_repo(self, repo)
        set_branch(self, branch)
        set_commit(self, commit)
        set_path(self, path)
        set_files(self, {} if files is None else files)
        set_empty(self, empty_files)
        set_join(self, join_on)
        set_group(self, group_by)


@dataclass(frozen=True, slots=True, init=False)
class PlannedDatum:
    id: str
    hash: str
    inputs: tuple[PlannedInput, ...]
    skip: bool = False  # processed by an earlier job of this pipeline: its outputs are reused

    def __init__(self, id: str, hash: str, inputs: tuple[PlannedInput, ...], skip: bool = False) -> None:  # noqa: A002
        set_id, set_hash, set_inputs, set_skip = _SLOTS[PlannedDatum]
        set_id(self, id)
        set_hash(self, hash)
        set_inputs(self, inputs)
        set_skip(self, skip)

    @property
    def sort_key(self) -> tuple[str, ...]:
        return tuple(i.path for i in sorted(self.inputs, key=lambda i: i.name))


_SLOTS: dict[type, tuple[Callable[[Any, Any], None], ...]] = {
    cls: tuple(getattr(cls, f.name).__set__ for f in fields(cls)) for cls in (PlannedInput, PlannedDatum)
}


class JobPlan(LenientRecord):
    """Written create-only before any datum of the job is enqueued."""

    job_id: str
    pipeline: str
    pipeline_version: int
    spec: dict[str, Any]
    salt: str
    inputs: tuple[CommitRef, ...]
    previous_index: str | None = None  # job id whose datum index the skipped datums come from
    # A plan may be stored as a layer on an earlier job's plan of the same pipeline (`base`):
    # its datums less `dropped` (ids), with the `flipped` ones' skip inverted, plus the stored
    # `datums`. In memory, once read, `datums` is always the whole plan (store.read_plan).
    base: str | None = None
    depth: int = 0  # layers between this plan and a whole one (0: stored whole)
    dropped: tuple[str, ...] = ()
    flipped: tuple[str, ...] = ()
    datums: tuple[PlannedDatum, ...] = ()

    def to_run(self) -> list[int]:
        return [i for i, d in enumerate(self.datums) if not d.skip]

    def current(self, datum: PlannedDatum) -> PlannedDatum:
        """`datum` with each input's commit the one this job read: a datum a layer carries from
        an earlier plan holds the commit it was planned on (its files are the same in both)."""
        commits = {(ref.repo, ref.branch or ""): ref.id for ref in self.inputs}
        if all(commits.get((i.repo, i.branch), i.commit) == i.commit for i in datum.inputs):
            return datum
        inputs = tuple(
            PlannedInput(i.name, i.repo, i.branch, commits.get((i.repo, i.branch), i.commit), i.path, i.files,
                         i.empty_files, i.join_on, i.group_by)
            for i in datum.inputs
        )
        return PlannedDatum(datum.id, datum.hash, inputs, datum.skip)


def layered(
    base: tuple[PlannedDatum, ...], dropped: Iterable[str], flipped: Iterable[str], added: Iterable[PlannedDatum]
) -> tuple[PlannedDatum, ...]:
    """A plan's datums from its base plan's: less `dropped`, `flipped` ones' skip inverted, plus
    `added`, in datum order (sort key, then id). Pure; the same in every process that reads the
    layer, so datum indexes (what a batch names) agree."""
    drop, flip = set(dropped), set(flipped)
    out = [d if d.id not in flip else PlannedDatum(d.id, d.hash, d.inputs, not d.skip)
           for d in base if d.id not in drop] if drop or flip else list(base)
    for datum in added:
        insort(out, datum, key=_order)
    return tuple(out)


def _order(datum: PlannedDatum) -> tuple[tuple[str, ...], str]:
    return datum.sort_key, datum.id


class IndexEntry(LenientRecord):
    """What one successful datum produced, kept so later jobs can skip it."""

    sort_key: tuple[str, ...]
    outputs: dict[str, FileEntry] = Field(default_factory=dict)


class DatumIndex(LenientRecord):
    """After a job: datum hash → outputs, for every datum that succeeded or was reused.

    Stored whole, or as a layer on the index the job reused (`base`): its entries less
    `removed` (hashes), plus the stored `entries`. In memory, once read, always whole."""

    job_id: str
    base: str | None = None
    depth: int = 0  # layers between this index and a whole one (0: stored whole)
    removed: tuple[str, ...] = ()
    # The output paths more than one entry writes, when the job merged its outputs (None: it did
    # not, or an older herd wrote the index): the next job's merge may then be made by what
    # changed, away from these (scheduler/merge.py merge_changes).
    shared: tuple[str, ...] | None = None
    entries: dict[str, IndexEntry] = Field(default_factory=dict)


def worth_a_layer(depth: int, changes: int, whole: int) -> bool:
    """Whether a plan or an index `changes` items away from a base `depth` layers deep (0:
    whole) is stored as a layer on it (the bounds manifests' layers keep: storage/model.py)."""
    return depth < model.MAX_LAYERS and changes * model.LAYER_SHARE <= whole


def layered_entries(
    base: Mapping[str, IndexEntry], removed: Iterable[str], added: Mapping[str, IndexEntry]
) -> dict[str, IndexEntry]:
    """An index's entries from its base index's: less `removed`, plus `added`. Pure."""
    entries = dict(base)
    for hash_ in removed:
        entries.pop(hash_, None)
    entries.update(added)
    return entries


def job_id_for(pipeline: str, version: int, salt: str, inputs: tuple[CommitRef, ...], nonce: str = "") -> str:
    """Deterministic, so a restarted scheduler finds (never duplicates) the jobs it made; the
    pipeline record's `job_nonce`, when it has one, tells a pipeline made again from the old."""
    fields = (pipeline, str(version), salt, *(f"{c.repo}@{c.id}" for c in inputs))
    return digest_fields(fields + ((f"nonce:{nonce}",) if nonce else ()))[:32]
