"""Pipeline operations: create, update, stop, start, delete; jobs: stop, restart datums.

Everything is validated before the first write, so a refused request changes nothing; a file
of several specs is validated as a whole (names, inputs, the graph among them) first.

Creating is create-only, in this order (docs/design.md, "Creating a pipeline"):
  1. the output repo: created, or taken over when an earlier create-pipeline of this name
     crashed after making it (no pipeline record, the output-repo description, no commits);
  2. the pipeline record at version 1, put-if-absent: the commit point. Exactly one of any
     number of concurrent creators writes it; the others fail naming the pipeline and change
     nothing, so a caller told "already exists" never has its spec stored or run;
  3. what follows from the record and can be redone at any time (`_complete`): the spec of
     version 1 and the output branch's provenance. A crash here leaves a working pipeline that
     the next create-pipeline or update-pipeline of the name completes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import uuid

from scheduler import dag, lifecycle
from scheduler.attempts import AttemptStore
from scheduler.cron import cron_inputs, cron_repo_description
from scheduler.plan import input_branches
from scheduler.queries import JobQueries
from scheduler.records import PipelineInfo
from scheduler.spec import PipelineSpec, parse_spec
from scheduler.store import PpsStore, now
from storage import failpoints
from storage.errors import (
    AlreadyExists, Conflict, HerdError, InvalidSpec, NotFound, PipelineNotFound, RepoNotFound,
)
from storage.layout import REPOS_PREFIX, commits_prefix, open_prefix, repo_key
from storage.model import BranchRef
from storage.repos import Pfs


def output_repo_description(name: str) -> str:
    """The description create-pipeline gives an output repo (how a leftover one is recognised)."""
    return f"output repo for pipeline {name}"


class Pipelines:
    """The pipeline verbs over storage; the CLI's only way to change pipelines."""

    def __init__(self, pfs: Pfs) -> None:
        self.pfs = pfs
        self.records = PpsStore(pfs.objects)

    def create(self, raw: dict[str, Any], update: bool = False, reprocess: bool = False) -> PipelineInfo:
        """Create (or with `update`, replace) a pipeline from a spec as the user wrote it."""
        return self.apply([raw], update=update, reprocess=reprocess)[0]

    def apply(
        self, raws: Sequence[dict[str, Any]], update: bool = False, reprocess: bool = False
    ) -> list[PipelineInfo]:
        """Create (or update) every pipeline of one file: all of them or, if any is refused, none."""
        specs = [parse_spec(raw) for raw in raws]
        self._check(specs, update)
        # Upstream first: an output branch's provenance names the repos it reads, which must exist.
        order = dag.topological_order({s.name: s.input_repos() for s in specs})
        by_name = {s.name: (raw, s) for raw, s in zip(raws, specs)}
        done: list[PipelineInfo] = []
        try:
            for raw, spec in (by_name[name] for name in order):
                done.append(self._update(raw, spec, reprocess) if update else self._create(raw, spec))
        except HerdError:
            if not update:  # lost a race on a later spec: take back the ones this call made
                for info in done:
                    self._roll_back(info.name)
            raise
        return done

    # ---- validation (no writes, except completing a half-made pipeline) ---------------------

    def _check(self, specs: list[PipelineSpec], update: bool) -> None:
        names = [s.name for s in specs]
        for name in sorted({n for n in names if names.count(n) > 1}):
            raise InvalidSpec(f"pipeline '{name}' appears more than once in the file")
        graph = self.records.pipeline_graph()
        for spec in specs:
            current = self.records.read_pipeline(spec.name)
            if current is not None:
                self._complete(current)  # a crashed create or update left it half-made
            if update and current is None:
                raise PipelineNotFound(spec.name)
            if not update and current is not None:
                raise _exists(spec.name)
            if not update and self._repo_exists(spec.name) and not self._leftover_output_repo(spec.name):
                raise AlreadyExists(
                    f"repo '{spec.name}' already exists; a pipeline's output repo takes the pipeline's name"
                )
        # The graph as it will be once every spec of the file is in: specs may read each other.
        after = {**graph, **{s.name: s.input_repos() for s in specs}}
        repos = self._repo_names() | set(names)
        for spec in specs:
            cron_repos = {c.repo for c in cron_inputs(spec.input)}
            for repo in sorted(cron_repos & set(after)):  # ticks would land in a pipeline's output
                raise InvalidSpec(f"pipeline '{spec.name}': cron repo '{repo}' is the output repo of pipeline '{repo}'")
            repos |= cron_repos  # made with the pipeline
        for spec in specs:
            others = {p: inputs for p, inputs in after.items() if p != spec.name}
            dag.check_new_pipeline(spec.name, spec.input_repos(), others, repos - {spec.name})

    def _repo_names(self) -> set[str]:
        objects = self.pfs.objects  # a folder without repo.json is a repo being deleted: not one
        return {c[:-1] for c in objects.list_children(REPOS_PREFIX) if c.endswith("/") and objects.exists(repo_key(c[:-1]))}

    def _repo_exists(self, name: str) -> bool:
        return self.pfs.objects.exists(repo_key(name))

    def _leftover_output_repo(self, name: str) -> bool:
        """An output repo a crashed create-pipeline made: no pipeline record, no commits."""
        try:
            repo = self.pfs.commits.require_repo(name)
        except RepoNotFound:
            return True  # gone meanwhile: creating it again is fine
        if repo.description != output_repo_description(name) or self.records.read_pipeline(name) is not None:
            return False
        objects = self.pfs.objects
        return not (objects.list_children(commits_prefix(name)) or objects.list_children(open_prefix(name))
                    or any(b.head for b in self.pfs.list_branches(name)))

    # ---- writes ------------------------------------------------------------------------------

    def _create(self, raw: dict[str, Any], spec: PipelineSpec) -> PipelineInfo:
        name = spec.name
        try:
            self.pfs.create_repo(name, description=output_repo_description(name))
        except AlreadyExists:
            if self.records.read_pipeline(name) is not None:
                raise _exists(name) from None
            if not self._leftover_output_repo(name):
                raise AlreadyExists(
                    f"repo '{name}' already exists; a pipeline's output repo takes the pipeline's name"
                ) from None
        failpoints.hit("create_pipeline.after_repo")
        stamp = now()
        info = PipelineInfo(
            name=name, version=1, spec=raw, salt=spec.salt or uuid.uuid4().hex, created=stamp, updated=stamp,
            ignored_fields=tuple(spec.ignored_fields), generation=1, job_nonce=uuid.uuid4().hex,
        )
        if not self.records.create_pipeline(info):
            raise _exists(name)  # another create-pipeline won: nothing of ours is stored
        failpoints.hit("create_pipeline.after_record")
        self._complete(info)
        return info

    def _update(self, raw: dict[str, Any], spec: PipelineSpec, reprocess: bool) -> PipelineInfo:
        stamp = now()
        frontier: list[datetime | None] = []  # read once, and only if the pipeline is stopped

        def change(old: PipelineInfo | None) -> PipelineInfo:
            if old is None:
                raise PipelineNotFound(spec.name)  # deleted meanwhile: never recreated by an update
            salt = uuid.uuid4().hex if reprocess else old.salt
            since: dict[str, Any] = {"since": stamp, "baseline": True}
            if old.stopped:
                # A stopped pipeline runs nothing for the update itself (Pachyderm 1.9
                # TestUpdateStoppedPipeline): once started, the new version takes over after
                # the last job the pipeline finished, one job per later input commit.
                if not frontier:
                    frontier.append(self._last_finished_trigger(old.name))
                since = {"since": frontier[0], "baseline": False}
            return old.model_copy(update={
                "version": old.version + 1, "spec": raw, "salt": salt, "updated": stamp, **since,
                "ignored_fields": tuple(spec.ignored_fields),
            })

        info = self.records.update_pipeline(spec.name, change)
        assert info is not None
        failpoints.hit("update_pipeline.after_record")
        self._complete(info)
        self._kill_older(info)
        return info

    def _last_finished_trigger(self, name: str) -> datetime | None:
        """When the inputs of the pipeline's newest ended job were all finished (the instant that
        job was owed); None when no job has ended, so the new version owes every commit."""
        for job_id in reversed(self.records.job_markers(name)):
            job = self.records.read_job(job_id)
            status = self.records.read_status(job_id)
            if job is None or status is None or not status.state.terminal:
                continue
            finished = []
            for ref in job.inputs:
                try:
                    finished.append(self.pfs.inspect_commit(ref.repo, ref.id).finished)
                except NotFound:
                    continue  # an input deleted since: the others still say when the job was owed
            return max((f for f in finished if f is not None), default=None)
        return None

    def _complete(self, info: PipelineInfo) -> None:
        """Make everything that follows from the record exist; safe to repeat, by anyone."""
        self.records.write_version(info.name, info.version, info.spec)
        failpoints.hit("create_pipeline.after_version")
        try:
            self.pfs.create_repo(info.name, description=output_repo_description(info.name))
        except AlreadyExists:
            pass  # the usual case: made before the record
        spec = parse_spec(info.spec)
        for cron in cron_inputs(spec.input):
            try:
                self.pfs.create_repo(cron.repo, description=cron_repo_description(info.name, cron.name))
            except AlreadyExists:
                pass  # made by an earlier create, or a repo of the user's that the ticks go to
        provenance = tuple(BranchRef(repo=repo, name=branch) for repo, branch in sorted(input_branches(spec)))
        current = next((b for b in self.pfs.list_branches(info.name) if b.name == spec.output_branch), None)
        if current is None or tuple(current.provenance) != provenance:
            try:
                self.pfs.create_branch(info.name, spec.output_branch, provenance=provenance)
            except RepoNotFound:
                pass  # an input repo was deleted since: provenance is a record, jobs do not need it

    def _roll_back(self, name: str) -> None:
        try:
            self.delete(name)
        except HerdError:
            pass  # best effort: what is left is a complete pipeline, not a half-made one

    def _kill_older(self, info: PipelineInfo) -> None:
        for job_id in self.records.job_markers(info.name):
            job = self.records.read_job(job_id)
            status = self.records.read_status(job_id)
            if job and job.pipeline_version < info.version and status and not status.state.terminal:
                lifecycle.kill_job(self.records, job_id, "a newer version of the pipeline replaced it")

    def inspect(self, name: str) -> PipelineInfo:
        return self.records.get_pipeline(name)

    def list(self) -> list[PipelineInfo]:
        return self.records.list_pipelines()

    def set_stopped(self, name: str, stopped: bool) -> PipelineInfo:
        self.records.get_pipeline(name)
        info = self.records.update_pipeline(
            name, lambda old: None if old is None or old.stopped == stopped else old.model_copy(update={"stopped": stopped})
        )
        return info or self.records.get_pipeline(name)

    def delete(self, name: str, keep_repo: bool = False) -> None:
        info = self.records.get_pipeline(name)
        downstream = [p for p, inputs in self.records.pipeline_graph().items() if name in inputs]
        if downstream and not keep_repo:
            raise Conflict(
                f"pipeline '{name}' feeds pipeline(s) {', '.join(downstream)}; delete those first or use --keep-repo"
            )
        # Newest first: a plan may be a layer on an older job's (scheduler/plan.py), so a delete
        # cut short leaves no job whose plan's base is gone.
        for job_id in reversed(self.records.job_markers(info.name)):
            self.records.delete_job(job_id)
        self.records.delete_pipeline(name)
        if not keep_repo:
            try:
                self.pfs.delete_repo(name, force=True)
            except RepoNotFound:
                pass  # the output repo may already be gone; the pipeline is what was asked for

    def restart_datum(self, job: str, key: str) -> None:
        """End a running datum's current attempt: its worker kills the user code at its next
        heartbeat and the datum runs again, without using one of its datum_tries. The restart is
        a create-only marker beside the attempt, so the worker's heartbeat cannot overwrite it."""
        job_id, planned, result = JobQueries(self.pfs).datum(job, key)
        if result is not None:
            raise Conflict(
                f"datum '{planned.id}' of job '{job_id}' already finished ({result.state.value}); "
                "restart-datum only restarts running datums"
            )
        attempts = AttemptStore(self.records.objects)
        latest = attempts.attempts(job_id, planned.id).latest
        if latest is not None and latest.counts:
            attempts.restart(latest)
        self.records.update_status(job_id, lambda s: s.model_copy(update={"restart": s.restart + 1}))

    def stop_job(self, job_id: str) -> None:
        info = self.records.get_job(job_id)
        status = self.records.read_status(info.id)
        if status is not None and status.state.terminal:
            raise Conflict(f"job '{info.id}' already finished ({status.state.value})")
        lifecycle.kill_job(self.records, info.id, "stopped by stop-job")


def _exists(name: str) -> AlreadyExists:
    return AlreadyExists(f"pipeline '{name}' already exists (use update-pipeline to change it)")
