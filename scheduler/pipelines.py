"""Pipeline operations: create, update, stop, start, delete; jobs: stop, restart datums.

Everything is validated before the first write, so a refused request changes nothing.
"""

from __future__ import annotations

from typing import Any

import uuid

from scheduler import dag, engine
from scheduler.plan import input_branches
from scheduler.records import PipelineInfo
from scheduler.spec import PipelineSpec, parse_spec
from scheduler.store import RecordStore, now
from storage.errors import AlreadyExists, Conflict, HerdError, PipelineNotFound
from storage.model import BranchRef
from storage.repos import Pfs


class Pipelines:
    """The pipeline verbs over storage; the CLI's only way to change pipelines."""

    def __init__(self, pfs: Pfs) -> None:
        self.pfs = pfs
        self.records = RecordStore(pfs.objects)

    def create(self, raw: dict[str, Any], update: bool = False, reprocess: bool = False) -> PipelineInfo:
        """Create (or with `update`, replace) a pipeline from a spec as the user wrote it."""
        spec = parse_spec(raw)
        name = spec.pipeline.name
        current = self.records.read_pipeline(name)
        if current is not None and not update:
            raise AlreadyExists(f"pipeline '{name}' already exists (use update-pipeline to change it)")
        if current is None and update:
            raise PipelineNotFound(name)
        self._check_inputs(spec)
        if current is None and name in {r.name for r in self.pfs.list_repos()}:
            raise AlreadyExists(f"repo '{name}' already exists; a pipeline's output repo takes the pipeline's name")
        if current is None:
            info = self._write(name, raw, spec, None, reprocess)
            self.pfs.create_repo(name, description=f"output repo for pipeline {name}")
        else:
            info = self._write(name, raw, spec, current, reprocess)
            self._kill_older(info)
        self._ensure_output_branch(spec)
        return info

    def _check_inputs(self, spec: PipelineSpec) -> None:
        existing = self.records.pipeline_graph()
        existing.pop(spec.pipeline.name, None)
        repos = {r.name for r in self.pfs.list_repos()}
        repos.discard(spec.pipeline.name)
        dag.check_new_pipeline(spec.pipeline.name, spec.input_repos(), existing, repos)

    def _write(self, name: str, raw: dict, spec: PipelineSpec, current: PipelineInfo | None,
               reprocess: bool) -> PipelineInfo:
        stamp = now()

        def change(old: PipelineInfo | None) -> PipelineInfo:
            if old is None:
                return PipelineInfo(
                    name=name, version=1, spec=raw, salt=spec.salt or uuid.uuid4().hex, created=stamp,
                    updated=stamp, ignored_fields=tuple(spec.ignored_fields),
                )
            salt = uuid.uuid4().hex if reprocess else old.salt
            return old.model_copy(update={
                "version": old.version + 1, "spec": raw, "salt": salt, "updated": stamp, "since": stamp,
                "ignored_fields": tuple(spec.ignored_fields),
            })

        info = self.records.update_pipeline(name, change)
        assert info is not None
        return info

    def _ensure_output_branch(self, spec: PipelineSpec) -> None:
        provenance = tuple(BranchRef(repo=repo, name=branch) for repo, branch in sorted(input_branches(spec)))
        self.pfs.create_branch(spec.pipeline.name, spec.output_branch, provenance=provenance)

    def _kill_older(self, info: PipelineInfo) -> None:
        for job_id in self.records.job_markers(info.name):
            job = self.records.read_job(job_id)
            status = self.records.read_status(job_id)
            if job and job.pipeline_version < info.version and status and not status.state.terminal:
                engine.kill_job(self.records, job_id, "a newer version of the pipeline replaced it")

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
        for job_id in self.records.job_markers(info.name):
            self.records.delete_job(job_id)
        self.records.delete_pipeline(name)
        if not keep_repo:
            try:
                self.pfs.delete_repo(name, force=True)
            except HerdError:
                pass  # the output repo may already be gone; the pipeline is what was asked for

    def stop_job(self, job_id: str) -> None:
        info = self.records.get_job(job_id)
        status = self.records.read_status(info.id)
        if status is not None and status.state.terminal:
            raise Conflict(f"job '{info.id}' already finished ({status.state.value})")
        engine.kill_job(self.records, info.id, "stopped by stop-job")
