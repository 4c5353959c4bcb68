"""Making cron ticks: commit the tick that is due to each running pipeline's cron repos.

Observe, decide, apply, as the reconcile loop does: the last tick is read from the cron repo's
master head (its newest tick file), `scheduler.cron.due_tick` decides, and the commit is made
with compare-and-set on the branch head. The decision is taken again on every try against the
head that try builds on, so when two processes (an active scheduler and a CLI, or two CLIs)
tick at once, the one that loses the race sees the winner's tick and makes none: each
scheduled time is committed once. Nothing is remembered between passes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from scheduler.cron import (
    Schedule, cron_inputs, cron_repo_description, due_tick, last_tick, next_tick, parse_schedule, tick_name, tick_paths,
)
from scheduler.records import PipelineInfo
from scheduler.spec import CronInput, parse_spec
from scheduler.store import PpsStore
from storage.blobs import BlobStore
from storage.branches import read_branch
from storage.commits import now as utc_now
from storage.errors import AlreadyExists, HerdError, RepoNotFound
from storage.model import FileEntry, Manifest
from storage.repos import Pfs

log = logging.getLogger(__name__)

BRANCH = "master"  # Pachyderm ticks the cron repo's master


@dataclass(frozen=True)
class Tick:
    """One tick made: the commit holding the file named by `time`."""

    pipeline: str
    input: str
    repo: str
    time: datetime
    commit: str


@dataclass(frozen=True)
class CronError:
    """A cron input that could not tick this pass (the others still did)."""

    pipeline: str
    input: str
    error: HerdError


@dataclass(frozen=True)
class _Cron:
    pipeline: str
    input: CronInput
    schedule: Schedule


class _NotDue(Exception):
    """Raised inside the branch CAS: the head already holds the tick (another ticker won)."""


class CronTicker:
    """Ticks the cron inputs of running pipelines; `tick` is one pass."""

    def __init__(self, pfs: Pfs, clock: Callable[[], datetime] = utc_now) -> None:
        self.pfs = pfs
        self.records = PpsStore(pfs.objects)
        self.clock = clock
        self.next_due: datetime | None = None  # as the last `tick` found

    def crons(self, pipelines: Collection[str] = ()) -> list[_Cron]:
        """The cron inputs of running pipelines (all, or those named), by pipeline and input."""
        found: list[_Cron] = []
        for info in self._pipelines(pipelines):
            try:
                spec = parse_spec(info.spec)
            except HerdError:
                continue  # a record no longer valid is the reconcile loop's to report
            found += [_Cron(info.name, cron, parse_schedule(cron.spec)) for cron in cron_inputs(spec.input)]
        return found

    def _pipelines(self, names: Collection[str]) -> list[PipelineInfo]:
        if names:
            infos = [self.records.get_pipeline(name) for name in names]  # PipelineNotFound names it
        else:
            infos = self.records.list_pipelines()
        return [info for info in infos if not info.stopped]  # a stopped pipeline's crons wait

    def tick(self, pipelines: Collection[str] = ()) -> tuple[list[Tick], list[CronError]]:
        """Commit every tick due now; an error on one cron input does not stop the others.
        Sets `next_due`, the earliest time one of them falls due again (None: none will)."""
        ticks: list[Tick] = []
        errors: list[CronError] = []
        upcoming: list[datetime] = []
        for cron in self.crons(pipelines):
            try:
                made, later = self._tick_one(cron)
            except HerdError as exc:
                errors.append(CronError(cron.pipeline, cron.input.name, exc))
                continue
            if later is not None:
                upcoming.append(later)
            if made is not None:
                log.info("pipeline %s: cron input %s ticked %s (repo %s, commit %s)", made.pipeline, made.input,
                         tick_name(made.time), made.repo, made.commit, extra={"pipeline": made.pipeline})
                ticks.append(made)
        self.next_due = min(upcoming, default=None)
        return ticks, errors

    def _start(self, pipeline: str, cron: CronInput) -> datetime:
        """`start`, else when the cron repo was made (with the pipeline): Pachyderm's "now".

        Reads the repo record every time, so a tick never lands in a repo deleted meanwhile:
        one deleted by hand is made again, and its ticks start over from then."""
        try:
            created = self.pfs.commits.require_repo(cron.repo).created
        except RepoNotFound:
            try:
                created = self.pfs.create_repo(cron.repo, cron_repo_description(pipeline, cron.name)).created
            except AlreadyExists:  # another ticker made it first
                created = self.pfs.commits.require_repo(cron.repo).created
        return cron.start if cron.start is not None else created

    def _last(self, repo: str) -> datetime | None:
        branch = read_branch(self.pfs.objects, repo, BRANCH)
        if branch is None or branch.head is None:
            return None
        return last_tick(self.pfs.commits.manifest_at(repo, branch.head).files)

    def _tick_one(self, cron: _Cron) -> tuple[Tick | None, datetime | None]:
        """The tick made (None: none was due, or another process made it) and when the next
        one falls due."""
        spec, repo = cron.input, cron.input.repo
        start, at = self._start(cron.pipeline, spec), self.clock()
        # A cheap look first, so a pass with nothing due writes nothing.
        last = self._last(repo)
        if due_tick(cron.schedule, start, last, at) is None:
            return None, next_tick(cron.schedule, start, last)
        empty, _size = BlobStore(self.pfs.objects).put_bytes(b"")  # what put-file stores for no bytes
        made: list[datetime] = []

        def build(head: Manifest) -> Manifest:
            # Runs once per try, on the head that try would replace: decide again there.
            due = due_tick(cron.schedule, start, last_tick(head.files), at)
            if due is None:
                raise _NotDue
            files = dict(head.files)
            if spec.overwrite:
                for path in tick_paths(files):
                    del files[path]
            files["/" + tick_name(due)] = FileEntry(chunks=(empty,), size=0)
            made[:] = [due]
            return Manifest(files=files)

        try:
            commit = self.pfs.commits.commit_on_branch(repo, BRANCH, build)
        except _NotDue:
            return None, next_tick(cron.schedule, start, self._last(repo))
        return Tick(cron.pipeline, spec.name, repo, made[0], commit.id), next_tick(cron.schedule, start, made[0])
