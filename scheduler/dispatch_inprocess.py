"""The embedded default: batches run on a thread pool inside the scheduler's own process."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from typing import Any

from scheduler.messages import BatchOutcome, DatumBatch
from scheduler.reconcile import Mark
from storage.objects import ObjectStore


class InProcessDispatcher:
    """Runs batches on threads, with the same function Celery workers run (handed over, not imported)."""

    def __init__(
        self, objects: ObjectStore, threads: int, run_batch: Callable[..., dict[str, Any]], release: Callable[..., None],
    ) -> None:
        """`run_batch(message, objects=)` runs a batch (worker.datum.process_batch); `release(objects,
        cancel=)` ends the warm sessions of the store (worker.context.release_context). The CLI's
        composition root (scheduler/cli/wiring.py) hands them over: the scheduler never imports them."""
        self._objects = objects
        self._run_batch = run_batch
        self._release = release
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="herd-datum")
        # (job, batch key, outcome): the batch counts as running until wait() hands its outcome
        # over, so no observation sees it neither running nor reported (and sends it again).
        self._outcomes: queue.Queue[tuple[str, str, BatchOutcome | BaseException]] = queue.Queue()
        self._lock = threading.Lock()
        self._running: dict[str, dict[str, tuple[int, ...]]] = {}  # job -> batch key -> datums
        self._watches: dict[str, dict[str, Mark]] = {}
        self._keys = itertools.count()
        self.threads = max(1, threads)

    def submit(self, batch: DatumBatch) -> None:
        key = f"batch-{next(self._keys)}"
        with self._lock:
            self._running.setdefault(batch.job_id, {})[key] = batch.datums
        self._pool.submit(self._run, key, batch)

    def _run(self, key: str, batch: DatumBatch) -> None:
        try:
            raw = self._run_batch(batch.model_dump(), objects=self._objects)
            outcome: BatchOutcome | BaseException = BatchOutcome.model_validate(raw)
        except BaseException as exc:  # noqa: BLE001 - surfaced to the scheduler thread by wait()
            outcome = exc
        self._outcomes.put((batch.job_id, key, outcome))

    def sent(self, job_id: str) -> list[Mark]:
        """Batches queued, running, or ended with an outcome wait() has not handed over yet: never
        stale, as none of them can be lost in this process."""
        now = self.now()
        with self._lock:
            running = [Mark(key, now, datums) for key, datums in self._running.get(job_id, {}).items()]
            return running + list(self._watches.get(job_id, {}).values())

    def forget(self, job_id: str, keys: tuple[str, ...]) -> None:
        with self._lock:
            for key in keys:
                self._watches.get(job_id, {}).pop(key, None)

    def watch(self, job_id: str, datums: tuple[int, ...]) -> None:
        key = f"watch-{next(self._keys)}"
        with self._lock:
            self._watches.setdefault(job_id, {})[key] = Mark(key, self.now(), datums, watch=True)

    def queue_size(self) -> int:
        return 0

    def now(self) -> float:
        return time.time()

    def wait(self, timeout: float) -> list[BatchOutcome]:
        """The outcomes of batches that ended, waiting up to `timeout` for the first; their
        batches stop counting as running only now, as the caller takes their outcomes."""
        out: list[BatchOutcome] = []
        try:
            item = self._outcomes.get(timeout=timeout)
        except queue.Empty:
            return out
        while True:
            job_id, key, outcome = item
            with self._lock:
                self._running.get(job_id, {}).pop(key, None)
            if isinstance(outcome, BaseException):
                raise outcome
            out.append(outcome)
            try:
                item = self._outcomes.get_nowait()
            except queue.Empty:
                return out

    def close(self, abort: bool = False) -> None:
        """Wait for running batches, then end the warm sessions and remove the scratch folders.

        abort=True (Ctrl-C, SIGTERM): queued batches are dropped and user code running now is
        killed first, so this returns within a second; those datums store no result and run
        again later."""
        if abort:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._release(self._objects, cancel=True)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._release(self._objects)
