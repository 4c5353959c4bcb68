"""The contract between scheduler and workers for datum attempts: claims, leases, results.

Storage layout, under `jobs/<job>/attempts/<datum id>/`:
    <n>              the n-th attempt, claimed create-only by one worker process; only its holder
                     rewrites it afterwards, to move its lease forward (a heartbeat)
    <n>.given_back   create-only: the attempt met an outage and gave its batch back; it does
                     not count against datum_tries
    <n>.restarted    create-only: restart-datum ended it; it does not count either, and its
                     worker kills the user code when its heartbeat sees the marker

Markers are separate keys so a heartbeat, which rewrites `<n>`, can never erase them. One
listing of the folder gives every attempt number and marker; the lease is the one read.
The rules (`Attempt.live`, `Attempts.tries_used`, ...) are pure and written once, here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from scheduler.job_records import DatumResult
from scheduler.records import JobPlan
from storage.errors import DataCorrupted
from storage.layout import GIVEN_BACK, RESTARTED, attempt_key, attempt_name, attempts_prefix
from storage.objects import ObjectStore



@dataclass(frozen=True)
class Attempt:
    """One attempt at a datum: who holds it and until when (broker clock, Unix seconds)."""

    job_id: str
    datum_id: str
    number: int
    worker: str = ""
    holder: str = ""
    lease_until: float = 0.0
    given_back: bool = False
    restarted: bool = False
    outage_at: float | None = None  # when it gave its batch back (its `.given_back` marker)

    @property
    def counts(self) -> bool:
        """Counted against datum_tries: only attempts that ran (or died running) user code."""
        return not (self.given_back or self.restarted)

    def live(self, now: float) -> bool:
        """Held by a worker that is still heartbeating, and not ended by a marker."""
        return self.counts and self.lease_until > now

    def body(self) -> bytes:
        return json.dumps(
            {"attempt": self.number, "worker": self.worker, "holder": self.holder, "lease_until": self.lease_until},
            sort_keys=True, separators=(",", ":"),
        ).encode()


@dataclass(frozen=True)
class Attempts:
    """Every attempt of one datum, oldest first."""

    items: tuple[Attempt, ...] = ()

    @property
    def latest(self) -> Attempt | None:
        return self.items[-1] if self.items else None

    @property
    def next_number(self) -> int:
        return self.items[-1].number + 1 if self.items else 1

    @property
    def tries_used(self) -> int:
        return sum(1 for a in self.items if a.counts)

    def live(self, now: float) -> bool:
        latest = self.latest
        return latest is not None and latest.live(now)

    def used_up(self, tries: int, now: float) -> bool:
        """No try left and nobody running one: the datum has failed for good."""
        return self.tries_used >= tries and not self.live(now)

    def outage_since(self) -> float | None:
        """When the run of outages the latest attempts met began (None: the latest met none)."""
        since = None
        for attempt in reversed(self.items):
            if not attempt.given_back:
                break
            since = attempt.outage_at if attempt.outage_at is not None else since
        return since


class DatumLedger(Protocol):
    """Exactly what a worker needs of storage to run a datum (implemented by `Ledger`)."""

    def read_plan(self, job_id: str) -> JobPlan | None: ...

    def job_ended(self, job_id: str) -> bool: ...

    def read_result(self, job_id: str, datum_id: str) -> DatumResult | None: ...

    def put_result(self, result: DatumResult) -> bool: ...

    def attempts(self, job_id: str, datum_id: str) -> Attempts: ...

    def claim(self, attempt: Attempt) -> bool: ...

    def renew(self, attempt: Attempt) -> None: ...

    def give_back(self, attempt: Attempt, at: float, reason: str) -> None: ...

    def restarted(self, attempt: Attempt) -> bool: ...

    def put_log(self, job_id: str, datum_id: str, attempt: int, log: dict[str, Any]) -> None: ...

    def put_log_segment(self, job_id: str, datum_id: str, attempt: int, seq: int, data: bytes) -> bool: ...


def _key(attempt: Attempt, marker: str | None = None) -> str:
    return attempt_key(attempt.job_id, attempt.datum_id, attempt.number, marker)


class AttemptStore:
    """Attempt records and markers in the object store (the layout above)."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    def attempts(self, job_id: str, datum_id: str) -> Attempts:
        names = set(self.objects.list_children(attempts_prefix(job_id, datum_id)))
        numbers = sorted(int(n) for n in names if n.isdigit())
        items = []
        for number in numbers:
            given_back = attempt_name(number, GIVEN_BACK) in names
            lease = self._read(attempt_key(job_id, datum_id, number)) if number == numbers[-1] else {}
            outage = self._read(attempt_key(job_id, datum_id, number, GIVEN_BACK)) if given_back else {}
            items.append(Attempt(
                job_id=job_id, datum_id=datum_id, number=number, worker=str(lease.get("worker", "")),
                holder=str(lease.get("holder", "")), lease_until=float(lease.get("lease_until", 0.0)),
                given_back=given_back, restarted=attempt_name(number, RESTARTED) in names,
                outage_at=float(outage["at"]) if "at" in outage else None,
            ))
        return Attempts(tuple(items))

    def history(self, job_id: str, datum_id: str) -> list[Attempt]:
        """Every attempt with its record read (the latest-only read of `attempts` is for hot paths)."""
        out = []
        for attempt in self.attempts(job_id, datum_id).items:
            lease = self._read(_key(attempt))
            out.append(Attempt(
                job_id=job_id, datum_id=datum_id, number=attempt.number, worker=str(lease.get("worker", "")),
                holder=str(lease.get("holder", "")), lease_until=float(lease.get("lease_until", 0.0)),
                given_back=attempt.given_back, restarted=attempt.restarted, outage_at=attempt.outage_at,
            ))
        return out

    def claim(self, attempt: Attempt) -> bool:
        """Take attempt number `attempt.number` (create-only): False when another process has it."""
        return self.objects.put_if_absent(_key(attempt), attempt.body())

    def renew(self, attempt: Attempt) -> None:
        """Move the lease forward; only the holder writes its attempt after the claim."""
        self.objects.put(_key(attempt), attempt.body())

    def give_back(self, attempt: Attempt, at: float, reason: str) -> None:
        body = json.dumps({"at": at, "reason": reason}, sort_keys=True).encode()
        self.objects.put_if_absent(_key(attempt, GIVEN_BACK), body)

    def restart(self, attempt: Attempt) -> None:
        self.objects.put_if_absent(_key(attempt, RESTARTED), b"{}")

    def restarted(self, attempt: Attempt) -> bool:
        return self.objects.exists(_key(attempt, RESTARTED))

    def _read(self, key: str) -> dict[str, Any]:
        found = self.objects.read_versioned(key)
        if found is None:
            return {}
        try:
            value = json.loads(found[0])
        except ValueError:
            raise DataCorrupted(f"attempt record '{key}' does not parse as JSON") from None
        if not isinstance(value, dict):
            raise DataCorrupted(f"attempt record '{key}' is not a JSON object")
        return value


def restarts(results: Sequence[DatumResult]) -> int:
    """Attempts beyond the first, over a job's results (Pachyderm's Restarts)."""
    return sum(max(0, r.attempt - 1) for r in results)
