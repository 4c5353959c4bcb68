"""Job and datum records, their states (Pachyderm's names) and the one place transitions live."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from enum import Enum

from pydantic import Field

from storage.errors import Conflict, DataCorrupted
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
    # Storage format 3: the bytes (base64) of outputs small enough to ride in the result, by
    # chunk id; their entries in `outputs` name chunks stored nowhere else until the job's finish
    # puts them into a pack (scheduler/inline_outputs.py). Saves a stored object per datum.
    inline: dict[str, str] = Field(default_factory=dict, exclude_if=lambda value: not value)

    def inline_chunks(self) -> dict[str, bytes]:
        """The inline outputs' bytes by chunk id, each hashed against its id and sized as its
        entries say (DataCorrupted naming the datum when one is not)."""
        chunks = {}
        for digest, text in self.inline.items():
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                data = None
            if data is None or hashlib.sha256(data).hexdigest() != digest:
                raise self._corrupt(f"holds output bytes that do not match their hash {digest[:12]}")
            chunks[digest] = data
        for path, entry in self.outputs.items():
            if len(entry.chunks) == 1 and entry.chunks[0] in chunks and entry.size != len(chunks[entry.chunks[0]]):
                raise self._corrupt(f"gives output '{path}' {entry.size} bytes, but carries {len(chunks[entry.chunks[0]])}")
        return chunks

    def _corrupt(self, what: str) -> DataCorrupted:
        return DataCorrupted(f"the result of datum '{self.datum_id}' in job '{self.job_id}' {what}")


def inline_text(data: bytes) -> str:
    """How DatumResult.inline holds a chunk's bytes."""
    return base64.b64encode(data).decode("ascii")
