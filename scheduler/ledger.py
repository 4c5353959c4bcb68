"""`Ledger`: the worker's side of the attempt contract (scheduler/attempts.py), over storage.

A worker reads the plan, claims and renews attempts, gives them back on an outage, checks for a
restart and stores one result per datum: nothing else of the scheduler's records.
"""

from __future__ import annotations

from typing import Any

from scheduler.attempts import Attempt, Attempts, AttemptStore
from scheduler.job_records import DatumResult
from scheduler.records import JobPlan
from scheduler.store import PpsStore
from storage.objects import ObjectStore


class Ledger:
    """Implements `attempts.DatumLedger`."""

    def __init__(self, objects: ObjectStore) -> None:
        self._records = PpsStore(objects)
        self._attempts = AttemptStore(objects)

    def read_plan(self, job_id: str) -> JobPlan | None:
        return self._records.read_plan(job_id)

    def job_ended(self, job_id: str) -> bool:
        status = self._records.read_status(job_id)
        return status is not None and status.state.terminal

    def read_result(self, job_id: str, datum_id: str) -> DatumResult | None:
        return self._records.read_result(job_id, datum_id)

    def put_result(self, result: DatumResult) -> bool:
        """Store a datum's outcome; the first one stored wins (create-only)."""
        return self._records.put_result(result)

    def attempts(self, job_id: str, datum_id: str) -> Attempts:
        return self._attempts.attempts(job_id, datum_id)

    def claim(self, attempt: Attempt) -> bool:
        return self._attempts.claim(attempt)

    def renew(self, attempt: Attempt) -> None:
        self._attempts.renew(attempt)

    def give_back(self, attempt: Attempt, at: float, reason: str) -> None:
        self._attempts.give_back(attempt, at, reason)

    def restarted(self, attempt: Attempt) -> bool:
        return self._attempts.restarted(attempt)

    def put_log(self, job_id: str, datum_id: str, attempt: int, log: dict[str, Any]) -> None:
        self._records.put_log(job_id, datum_id, attempt, log)

    def put_log_segment(self, job_id: str, datum_id: str, attempt: int, seq: int, data: bytes) -> bool:
        return self._records.put_log_segment(job_id, datum_id, attempt, seq, data)
