"""Pipeline and job records in the object store: the only durable state of the scheduler.

Every key is spelled in storage/layout.py, whose docstring is the layout table.
"""

from __future__ import annotations

import functools
import json
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter

from scheduler.attempts import Attempt, AttemptStore
from scheduler.job_records import DatumResult, JobInfo, JobStatus
from scheduler.records import DatumIndex, IndexEntry, JobPlan, PipelineInfo, PlannedDatum, layered, layered_entries
from scheduler.spec import parse_spec, valid_pipeline_name
from storage import layout
from storage.cas import update_mutable
from storage.commits import now as now  # the one clock of records, re-exported for the scheduler and worker
from storage.errors import DataCorrupted, JobNotFound, ObjectNotFound, PipelineNotFound
from storage.factory import ensure_format
from storage.model import MAX_LAYERS
from storage.objects import ObjectStore

CAS_TRIES = 50
PLANS_KEPT = 16
PLAN_DATUMS_KEPT = 250_000
PART_ITEMS = 1_000  # datums or index entries serialised at a time (about 0.5 MB)
RESULTS_KEPT = 10_000  # datum results a process keeps of those it stored (about 1 KB each)
INDEXES_KEPT = 4  # datum indexes: one lists every datum of a job


# Plans, results and datum indexes are create-only, so every PpsStore of one object store in this
# process (the scheduler's, the embedded workers') shares the copies it read or wrote: a
# 100,000-datum plan is parsed once, an embedded scheduler merges the results its own workers
# stored without reading them back (a GET per datum on S3), and the next job plans against the
# index the last one wrote without parsing it again.
@dataclass
class _Kept:
    plans: dict[str, JobPlan] = field(default_factory=dict)
    results: dict[str, dict[str, DatumResult]] = field(default_factory=dict)  # by job id, then datum id
    indexes: dict[tuple[str, str], DatumIndex] = field(default_factory=dict)  # by pipeline and job id


_KEPT: weakref.WeakKeyDictionary[ObjectStore, _Kept] = weakref.WeakKeyDictionary()
_KEPT_LOCK = threading.Lock()


def _shared(objects: ObjectStore) -> _Kept:
    with _KEPT_LOCK:
        try:
            return _KEPT.setdefault(objects, _Kept())
        except TypeError:  # a store that cannot be weakly referenced keeps its own
            return _Kept()


class PpsStore:
    """The scheduler's (pps) pipeline, job and datum records, typed; immutable ones are cached
    in memory."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        kept = _shared(objects)
        self._plans = kept.plans
        self._results = kept.results
        self._infos: dict[str, JobInfo] = {}
        self._indexes = kept.indexes

    # pipelines -------------------------------------------------------------------------
    def pipeline_names(self) -> list[str]:
        return [name.rstrip("/") for name in self.objects.list_children(layout.PIPELINES_PREFIX) if name.endswith("/")]

    def read_pipeline(self, name: str) -> PipelineInfo | None:
        if not valid_pipeline_name(name):
            return None  # no such pipeline can exist, and the name must not become a key
        found = self.objects.read_versioned(layout.pipeline_info_key(name))
        return None if found is None else PipelineInfo.model_validate_json(found[0])

    def get_pipeline(self, name: str) -> PipelineInfo:
        info = self.read_pipeline(name)
        if info is None:
            raise PipelineNotFound(name)
        return info

    def list_pipelines(self) -> list[PipelineInfo]:
        return [p for name in self.pipeline_names() if (p := self.read_pipeline(name)) is not None]

    def pipeline_graph(self) -> dict[str, set[str]]:
        """Every pipeline with the repos it reads: the DAG that create, delete and flush check."""
        return {p.name: parse_spec(p.spec).input_repos() for p in self.list_pipelines()}

    def create_pipeline(self, info: PipelineInfo) -> bool:
        """Store a new pipeline's record, create-only: False when the name is taken (the commit
        point of create-pipeline, so exactly one of several concurrent creators wins)."""
        return self.objects.put_if_absent(layout.pipeline_info_key(info.name), info.canonical_bytes())

    def write_version(self, name: str, version: int, spec: dict[str, Any]) -> None:
        """Keep the spec of a version (create-only; repeating it is harmless)."""
        key = layout.pipeline_version_key(name, version)
        if not self.objects.exists(key):
            self.objects.put_if_absent(key, _dump_json(spec))

    def update_pipeline(
        self, name: str, fn: Callable[[PipelineInfo | None], PipelineInfo | None]
    ) -> PipelineInfo | None:
        """Read, apply `fn`, compare-and-set (retried on a lost race); a new version keeps its spec."""

        def bump(current: PipelineInfo | None) -> PipelineInfo | None:
            new = fn(current)
            # The generation makes every body differ from the last, so a stale token never wins.
            return None if new is None else new.model_copy(update={"generation": current.generation + 1 if current else 1})

        before = self.read_pipeline(name)
        stored = update_mutable(self.objects, layout.pipeline_info_key(name), PipelineInfo, bump, CAS_TRIES)
        if stored is not None and (before is None or before.version != stored.version):
            self.objects.put_if_absent(layout.pipeline_version_key(name, stored.version), _dump_json(stored.spec))
        return stored

    def delete_pipeline(self, name: str) -> None:
        # Indexes newest first: one may be a layer on an older one, and a delete cut short must
        # leave none without its base (garbage-collect reads every index it finds).
        for job_id in reversed(self.job_markers(name)):
            self.objects.delete(layout.index_key(name, job_id))
        for key in list(self.objects.list(layout.pipeline_prefix(name))):
            self.objects.delete(key)
        # A pipeline an older herd made (no job_nonce), made again with the same salt, has the same
        # job ids: the indexes its jobs write are new ones.
        for kept in [kept for kept in list(self._indexes) if kept[0] == name]:
            self._indexes.pop(kept, None)

    # jobs ------------------------------------------------------------------------------
    def job_markers(self, pipeline: str) -> list[str]:
        """Job ids of a pipeline, oldest first."""
        names = self.objects.list_children(layout.job_markers_prefix(pipeline))
        return [job_id for name in names if (job_id := layout.job_of_marker(name)) is not None]

    def create_job(self, info: JobInfo) -> bool:
        """Create the job's info record and its marker; False when it already existed."""
        created = self.objects.put_if_absent(layout.job_info_key(info.id), _dump(info))
        if created:
            created_ns = int(info.created.timestamp() * 1e9)
            self.objects.put_if_absent(layout.job_marker_key(info.pipeline, created_ns, info.id), b"")
        return created

    def read_job(self, job_id: str) -> JobInfo | None:
        if job_id in self._infos:
            return self._infos[job_id]
        found = self.objects.read_versioned(layout.job_info_key(job_id))
        if found is None:
            return None
        info = JobInfo.model_validate_json(found[0])
        self._infos[job_id] = info
        return info

    def get_job(self, job_id: str) -> JobInfo:
        info = self.read_job(job_id)
        if info is None:
            info = self._by_prefix(job_id)
        if info is None:
            raise JobNotFound(job_id)
        return info

    def _by_prefix(self, prefix: str) -> JobInfo | None:
        if len(prefix) < 6:
            return None
        matches = [n.rstrip("/") for n in self.objects.list_children(layout.JOBS_PREFIX) if n.startswith(prefix)]
        return self.read_job(matches[0]) if len(matches) == 1 else None

    def write_plan(self, plan: JobPlan, layer: tuple[PlannedDatum, ...] | None = None) -> None:
        """Store a plan create-only: whole, or (with `layer`, the datums it adds to its base; its
        `base`, `dropped` and `flipped` say the rest) as a layer on an earlier plan."""
        stored = plan if layer is None else plan.model_copy(update={"datums": layer})
        if layer is not None:
            ensure_format(self.objects, layout.LAYERS_FORMAT)  # an older herd would take the layer for the plan
        if self.objects.put_chunks_if_absent(layout.job_plan_key(plan.job_id), dump_in_parts(stored, "datums")):
            # A new plan starts the job afresh: a pipeline deleted (by another process) and made
            # again with the same salt and inputs has the same job ids, and the results this
            # process kept of the old job are not the new one's.
            self._results.pop(plan.job_id, None)
        self._keep_plan(plan)

    def read_plan(self, job_id: str) -> JobPlan | None:
        """A job's plan, its datums whole (a layer is resolved on the plans below it)."""
        return self._read_plan(job_id, MAX_LAYERS)

    def _read_plan(self, job_id: str, deepest: int) -> JobPlan | None:
        key = layout.job_plan_key(job_id)
        plan = self._plans.get(job_id)
        if plan is None:
            found = self.objects.read_versioned(key)
            if found is None:
                return None
            plan = JobPlan.model_validate_json(found[0])
            if plan.base is not None:
                _check_depth(key, plan.depth, deepest)
                base = _checked(key, plan.base, self._read_plan(plan.base, plan.depth - 1))
                plan = plan.model_copy(update={"datums": layered(base.datums, plan.dropped, plan.flipped, plan.datums)})
            self._keep_plan(plan)
        _check_depth(key, plan.depth, deepest)
        return plan

    def _keep_plan(self, plan: JobPlan) -> None:
        # Bounded by plans and by datums (one plan may hold 100,000): a scheduler runs for months.
        held = sum(len(kept.datums) for kept in list(self._plans.values()))
        if len(self._plans) >= PLANS_KEPT or held + len(plan.datums) > PLAN_DATUMS_KEPT:
            self._plans.clear()
        self._plans[plan.job_id] = plan

    def read_status(self, job_id: str) -> JobStatus | None:
        found = self.objects.read_versioned(layout.job_status_key(job_id))
        return None if found is None else JobStatus.model_validate_json(found[0])

    def update_status(self, job_id: str, fn: Callable[[JobStatus], JobStatus | None]) -> JobStatus:
        """Read, apply `fn`, compare-and-set; retried on a lost race. Statuses only move forward,
        so a body never repeats an earlier one and a stale token cannot win."""
        stored = update_mutable(
            self.objects, layout.job_status_key(job_id), JobStatus, lambda current: fn(current or JobStatus()), CAS_TRIES
        )
        return stored or JobStatus()

    def record_image(self, job_id: str, image_id: str) -> str:
        """Record the image id the job's datums run, create-only; returns the one recorded first
        (another worker may have won), which every datum of the job must run."""
        key = layout.job_image_key(job_id)
        if self.objects.put_if_absent(key, image_id.encode()):
            return image_id
        return self.read_image(job_id) or image_id

    def read_image(self, job_id: str) -> str | None:
        """The image id recorded for the job (`sha256:...`, or what a runtime without images
        records); None before its first datum started."""
        found = self.objects.read_versioned(layout.job_image_key(job_id))
        return None if found is None else found[0].decode("utf-8", errors="replace")

    # datums ----------------------------------------------------------------------------
    def put_result(self, result: DatumResult) -> bool:
        """Store a datum's outcome; the first one stored wins (create-only)."""
        created = self.objects.put_if_absent(layout.result_key(result.job_id, result.datum_id), _dump(result))
        if created:
            self._keep_result(result)
        return created

    def read_result(self, job_id: str, datum_id: str) -> DatumResult | None:
        kept = self._results.get(job_id, {}).get(datum_id)
        if kept is not None:
            return kept
        found = self.objects.read_versioned(layout.result_key(job_id, datum_id))
        return None if found is None else DatumResult.model_validate_json(found[0])

    def result_ids(self, job_id: str) -> set[str]:
        return set(self.objects.list_children(layout.results_prefix(job_id)))

    def iter_results(self, job_id: str) -> Iterator[DatumResult]:
        """Every stored result of a job: the ones this process stored from memory (the key is
        listed first, so a deleted result is never seen), the others read."""
        kept = self._results.get(job_id, {})
        for key in self.objects.list(layout.results_prefix(job_id)):
            result = kept.get(key.rsplit("/", 1)[-1])
            yield result if result is not None else DatumResult.model_validate_json(self.objects.get(key))

    def _keep_result(self, result: DatumResult) -> None:
        if sum(len(job) for job in list(self._results.values())) >= RESULTS_KEPT:
            self._results.clear()
        self._results.setdefault(result.job_id, {})[result.datum_id] = result

    def attempts(self, job_id: str, datum_id: str) -> list[Attempt]:
        """Every attempt of a datum with its record, oldest first (inspect-datum, tests)."""
        return AttemptStore(self.objects).history(job_id, datum_id)

    def put_log(self, job_id: str, datum_id: str, attempt: int, log: dict[str, Any]) -> None:
        self.objects.put(layout.log_key(job_id, datum_id, attempt), _dump_json(log))

    def put_log_segment(self, job_id: str, datum_id: str, attempt: int, seq: int, data: bytes) -> bool:
        """Create segment `seq` of an attempt's lines; False when it exists (never overwritten)."""
        return self.objects.put_if_absent(layout.log_segment_key(job_id, datum_id, attempt, seq), data)

    def log_keys(self, job_id: str, datum_id: str | None = None) -> list[str]:
        """Every summary and segment key of a job's (or a datum's) logs, sorted."""
        return list(self.objects.list(layout.logs_prefix(job_id, datum_id)))

    def read_log_object(self, key: str) -> bytes | None:
        """A summary's or segment's bytes; None when it is gone (the job was deleted meanwhile)."""
        try:
            return self.objects.get(key)
        except ObjectNotFound:
            return None

    def logs(self, job_id: str, datum_id: str | None = None) -> Iterator[dict[str, Any]]:
        """The attempts' summaries (reason, exit code; stdout/stderr tails before live logs)."""
        for key in self.objects.list(layout.logs_prefix(job_id, datum_id)):
            parsed = layout.parse_log_key(key)
            if parsed is not None and parsed[2] is None:
                yield json.loads(self.objects.get(key))

    # datum index -----------------------------------------------------------------------
    def write_index(self, pipeline: str, index: DatumIndex, layer: dict[str, IndexEntry] | None = None) -> None:
        """Store a job's index create-only: whole, or (with `layer`, the entries it adds to its
        base; its `base` and `removed` say the rest) as a layer on an earlier job's."""
        key = layout.index_key(pipeline, index.job_id)
        stored = index if layer is None else index.model_copy(update={"entries": layer})
        if layer is not None:
            ensure_format(self.objects, layout.LAYERS_FORMAT)
        if self.objects.put_chunks_if_absent(key, dump_in_parts(stored, "entries")):
            self._keep_index(pipeline, index.job_id, index)  # another's, there first, is read when asked for

    def stored_index(self, pipeline: str, job_id: str) -> DatumIndex | None:
        """A job's index as stored: a layer's own entries only (garbage-collect reads every
        index, each layer's base among them)."""
        found = self.objects.read_versioned(layout.index_key(pipeline, job_id))
        return None if found is None else DatumIndex.model_validate_json(found[0])

    def read_index(self, pipeline: str, job_id: str) -> DatumIndex | None:
        """A job's datum index, whole (create-only, so a copy read once stays true: planning and
        finishing the next job both read it; a layer is resolved on the indexes below it)."""
        return self._read_index(pipeline, job_id, MAX_LAYERS)

    def _read_index(self, pipeline: str, job_id: str, deepest: int) -> DatumIndex | None:
        key = layout.index_key(pipeline, job_id)
        index = self._indexes.get((pipeline, job_id))
        if index is None:
            index = self.stored_index(pipeline, job_id)
            if index is None:
                return None
            if index.base is not None:
                _check_depth(key, index.depth, deepest)
                base = _checked(key, index.base, self._read_index(pipeline, index.base, index.depth - 1))
                index = index.model_copy(update={"entries": layered_entries(base.entries, index.removed, index.entries)})
            self._keep_index(pipeline, job_id, index)
        _check_depth(key, index.depth, deepest)
        return index

    def _keep_index(self, pipeline: str, job_id: str, index: DatumIndex) -> None:
        if len(self._indexes) >= INDEXES_KEPT:
            self._indexes.clear()
        self._indexes[(pipeline, job_id)] = index

    def latest_index_before(self, pipeline: str, job_id: str) -> str | None:
        """The newest job before `job_id` that left a datum index."""
        ids = self.job_markers(pipeline)
        if job_id in ids:
            ids = ids[: ids.index(job_id)]
        for candidate in reversed(ids):
            if self.objects.exists(layout.index_key(pipeline, candidate)):
                return candidate
        return None

    def delete_job(self, job_id: str) -> None:
        for key in list(self.objects.list(layout.job_prefix(job_id))):
            self.objects.delete(key)
        self._plans.pop(job_id, None)
        self._results.pop(job_id, None)
        self._infos.pop(job_id, None)


_Layered = TypeVar("_Layered", JobPlan, DatumIndex)


def _check_depth(key: str, depth: int, deepest: int) -> None:
    """A record `depth` layers deep read where at most `deepest` may be: each layer's base must be
    lower in its chain, so a chain that loops or runs too long ends here, read no further."""
    if not 0 <= depth <= deepest:
        raise DataCorrupted(
            f"record '{key}' is a layer {depth} deep where at most {deepest} can be (a chain of layers that "
            "loops or is too long); delete the pipeline and create it again"
        )


def _checked(key: str, base_id: str, base: _Layered | None) -> _Layered:
    """A layer's base, which must be there."""
    if base is None:
        raise DataCorrupted(
            f"record '{key}' is a layer on the record of job '{base_id}', which is missing; "
            "delete the pipeline and create it again"
        )
    return base


def _dump(record: BaseModel) -> bytes:
    # The same bytes as model_dump_json().encode() without the str between: a 100,000-datum
    # plan's 45 MB are held once, not twice, at the scheduler's peak of memory.
    return record.__pydantic_serializer__.to_json(record)


def dump_in_parts(record: BaseModel, collection: str, per_part: int = PART_ITEMS) -> Iterator[bytes]:
    """The bytes of `_dump(record)`, made `per_part` items of its collection `collection` at a time.

    A 100,000-datum plan is 50 MB of JSON: made whole, pydantic-core's growing buffer and then
    the bytes object held about 115 MB at the scheduler's peak of memory; in parts, a part.
    `collection` is the record's last field, a tuple or a dict, as a plan's datums and an index's
    entries are."""
    items = getattr(record, collection)
    keyed = isinstance(items, dict)
    closing = b"{}}" if keyed else b"[]}"
    head = _dump(record.model_copy(update={collection: type(items)()}))
    if not head.endswith(b'"' + collection.encode() + b'":' + closing):
        raise TypeError(f"{type(record).__name__}.{collection} is not its last field, a tuple or a dict")
    yield head[:-2]
    adapter = _field_adapter(type(record), collection)
    values = list(items.items()) if keyed else items
    for start in range(0, len(values), per_part):
        part = values[start:start + per_part]
        body = adapter.dump_json(dict(part) if keyed else part)
        yield (b"," if start else b"") + body[1:-1]
    yield closing[1:]


@functools.cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    return TypeAdapter(model.model_fields[name].annotation)


def _dump_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
