"""Job and datum records, their states (Pachyderm's names) and the one place transitions live."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import Field

from storage.errors import Conflict
from storage.model import CommitRef, FileEntry, LenientRecord


class JobState(str, Enum):
    JOB_STARTING = "JOB_STARTING"
    JOB_RUNNING = "JOB_RUNNING"
    JOB_SUCCESS = "JOB_SUCCESS"
    JOB_FAILURE = "JOB_FAILURE"
    JOB_KILLED = "JOB_KILLED"
    JOB_EGRESSING = "JOB_EGRESSING"  # the output commit is finished; its files are being copied to egress.URL
    JOB_UNRUNNABLE = "JOB_UNRUNNABLE"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobState.JOB_SUCCESS, JobState.JOB_FAILURE, JobState.JOB_KILLED, JobState.JOB_UNRUNNABLE})

_ALLOWED = {
    JobState.JOB_STARTING: {JobState.JOB_RUNNING, JobState.JOB_KILLED, JobState.JOB_UNRUNNABLE, JobState.JOB_FAILURE},
    JobState.JOB_RUNNING: {JobState.JOB_SUCCESS, JobState.JOB_FAILURE, JobState.JOB_KILLED, JobState.JOB_EGRESSING},
    JobState.JOB_EGRESSING: {JobState.JOB_SUCCESS, JobState.JOB_FAILURE, JobState.JOB_KILLED},
}


def transition(current: JobState, new: JobState, job_id: str) -> JobState:
    """Return `new` if a job may move there from `current`; a finished job never moves again."""
    if current == new:
        return new
    if new not in _ALLOWED.get(current, set()):
        raise Conflict(f"job '{job_id}' is {current.value} and cannot become {new.value}")
    return new


class DatumState(str, Enum):
    STARTING = "STARTING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    RECOVERED = "RECOVERED"


class JobInfo(LenientRecord):
    """Written once, create-only, when the job is created: what it computes from."""

    id: str
    pipeline: str
    pipeline_version: int
    salt: str
    inputs: tuple[CommitRef, ...]
    created: datetime
    output_repo: str
    output_branch: str


class JobStats(LenientRecord):
    download_time: float = 0.0
    process_time: float = 0.0
    upload_time: float = 0.0
    download_bytes: int = 0
    upload_bytes: int = 0

    def plus(self, other: JobStats) -> JobStats:
        return JobStats(**{k: getattr(self, k) + getattr(other, k) for k in JobStats.model_fields})


class JobStatus(LenientRecord):
    """The mutable part of a job (compare-and-set): state, counters, outcome."""

    state: JobState = JobState.JOB_STARTING
    reason: str = ""
    started: datetime | None = None
    finished: datetime | None = None
    data_total: int = 0
    data_processed: int = 0
    data_skipped: int = 0
    data_failed: int = 0
    data_recovered: int = 0
    restart: int = 0
    stats: JobStats = Field(default_factory=JobStats)
    output_commit: str | None = None
    failed_datums: tuple[str, ...] = ()


class DatumResult(LenientRecord):
    """The outcome of one datum in one job; the first one stored (create-only) wins."""

    job_id: str
    datum_id: str
    datum_hash: str
    state: DatumState
    attempt: int = 1
    exit_code: int | None = None
    reason: str = ""
    # Why it failed, as a code (storage.errors `code`: user_code, timeout, oom, output_quota,
    # unsafe_output, input_corrupt, image, tries_used_up, storage_unavailable, ...); None on success.
    error: str | None = None
    worker: str = ""
    started: datetime | None = None
    finished: datetime | None = None
    stats: JobStats = Field(default_factory=JobStats)
    outputs: dict[str, FileEntry] = Field(default_factory=dict)
