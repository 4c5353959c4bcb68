"""Which input-commit tuples a pipeline owes a job to. Pure.

Pachyderm 1.4: when a pipeline is created, every finished commit already on an input branch
gets a job, oldest first, then every new one; a job pairs the commit that triggered it with the
other inputs' latest commit finished at or before it; no job until every input has a commit; an
identical tuple never runs twice. After `update-pipeline` (1.5.1+), the new version runs one job
on the inputs as they were at the update (the baseline), then one per later commit. An update of
a STOPPED pipeline owes no baseline (Pachyderm 1.9 TestUpdateStoppedPipeline): the new version
takes over after the last job the pipeline finished, one job per later commit, so starting it
again never reruns inputs the old version already ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from scheduler.records import PipelineInfo, job_id_for
from storage.model import CommitRef

InputKey = tuple[str, str]  # (repo, branch)


@dataclass(frozen=True)
class Finished:
    """A finished commit on an input branch."""

    repo: str
    branch: str
    id: str
    finished: datetime


def job_tuples(
    inputs: Sequence[InputKey],
    histories: Mapping[InputKey, Sequence[Finished]],
    since: datetime | None = None,
    baseline: bool = True,
) -> list[tuple[CommitRef, ...]]:
    """The ordered, de-duplicated input tuples; each tuple lists one commit per input key.

    `since` set: only commits finished after it trigger jobs, plus (with `baseline`) one job on
    the inputs as they were at `since`.
    """
    keys = list(dict.fromkeys(inputs))
    events = sorted(
        ((c.finished, keys.index(key), c) for key in keys for c in histories.get(key, ())),
        key=lambda e: (e[0], e[1]),
    )
    latest: dict[InputKey, Finished] = {}
    out: list[tuple[CommitRef, ...]] = []
    seen: set[tuple[str, ...]] = set()

    def emit() -> None:
        if len(latest) < len(keys):
            return
        refs = tuple(CommitRef(repo=k[0], id=latest[k].id, branch=k[1]) for k in keys)
        ident = tuple(r.id for r in refs)
        if ident not in seen:
            seen.add(ident)
            out.append(refs)

    pending_baseline = since is not None and baseline
    for finished, _, commit in events:
        if pending_baseline and since is not None and finished > since:  # pending_baseline implies since
            emit()  # the job on the inputs as they were at the update
            pending_baseline = False
        latest[(commit.repo, commit.branch)] = commit
        if since is None or finished > since:
            emit()
    if pending_baseline:
        emit()
    return out


def owed_jobs(
    pipeline: PipelineInfo, inputs: Sequence[InputKey], histories: Mapping[InputKey, Sequence[Finished]],
) -> list[tuple[str, tuple[CommitRef, ...]]]:
    """Every job the pipeline's current version owes, oldest first, as (job id, input commits)."""
    tuples = job_tuples(inputs, histories, pipeline.since, baseline=pipeline.baseline)
    return [(job_id_for(pipeline.name, pipeline.version, pipeline.salt, t, pipeline.job_nonce), t) for t in tuples]
