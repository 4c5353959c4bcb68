"""Pipeline records and the job plan, as stored. Pure models, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import Field

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
@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class PlannedDatum:
    id: str
    hash: str
    inputs: tuple[PlannedInput, ...]
    skip: bool = False  # processed by an earlier job of this pipeline: its outputs are reused

    @property
    def sort_key(self) -> tuple[str, ...]:
        return tuple(i.path for i in sorted(self.inputs, key=lambda i: i.name))


class JobPlan(LenientRecord):
    """Written create-only before any datum of the job is enqueued."""

    job_id: str
    pipeline: str
    pipeline_version: int
    spec: dict[str, Any]
    salt: str
    inputs: tuple[CommitRef, ...]
    previous_index: str | None = None  # job id whose datum index the skipped datums come from
    datums: tuple[PlannedDatum, ...] = ()

    def to_run(self) -> list[int]:
        return [i for i, d in enumerate(self.datums) if not d.skip]


class IndexEntry(LenientRecord):
    """What one successful datum produced, kept so later jobs can skip it."""

    sort_key: tuple[str, ...]
    outputs: dict[str, FileEntry] = Field(default_factory=dict)


class DatumIndex(LenientRecord):
    """After a job: datum hash → outputs, for every datum that succeeded or was reused."""

    job_id: str
    entries: dict[str, IndexEntry] = Field(default_factory=dict)


def job_id_for(pipeline: str, version: int, salt: str, inputs: tuple[CommitRef, ...], nonce: str = "") -> str:
    """Deterministic, so a restarted scheduler finds (never duplicates) the jobs it made; the
    pipeline record's `job_nonce`, when it has one, tells a pipeline made again from the old."""
    fields = (pipeline, str(version), salt, *(f"{c.repo}@{c.id}" for c in inputs))
    return digest_fields(fields + ((f"nonce:{nonce}",) if nonce else ()))[:32]
