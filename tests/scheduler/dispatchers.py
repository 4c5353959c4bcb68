"""Dispatchers for tests of the scheduler loop: they keep what is sent and deliver nothing."""

from __future__ import annotations

import time

from scheduler.messages import BatchOutcome, DatumBatch
from scheduler.reconcile import Mark


class LosingDispatcher:
    """Keeps every batch sent and loses it, as a broker that died would: nothing stays in flight."""

    def __init__(self) -> None:
        self.batches: list[DatumBatch] = []

    def submit(self, batch: DatumBatch) -> None:
        self.batches.append(batch)

    def sent(self, job_id: str) -> list[Mark]:
        return []

    def forget(self, job_id: str, keys: tuple[str, ...]) -> None:
        pass

    def watch(self, job_id: str, datums: tuple[int, ...]) -> None:
        pass

    def queue_size(self) -> int:
        return 0

    def now(self) -> float:
        return time.time()

    def wait(self, timeout: float) -> list[BatchOutcome]:
        return []

    def close(self) -> None:
        pass
