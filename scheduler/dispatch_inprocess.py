"""The embedded default: batches run on a thread pool inside the scheduler's own process."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor

from scheduler.dispatch import resolve_task
from scheduler.messages import PROCESS_BATCH, RELEASE_CONTEXT, BatchOutcome, DatumBatch
from storage.objects import ObjectStore


class InProcessDispatcher:
    """Runs `herd.process_batch` in threads; the same function Celery workers run."""

    def __init__(self, objects: ObjectStore, threads: int, runtime: str | None = None) -> None:
        self._objects = objects
        self._runtime = runtime
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="herd-datum")
        self._outcomes: queue.Queue[BatchOutcome | BaseException] = queue.Queue()
        self._lock = threading.Lock()
        self._in_flight: dict[str, set[int]] = {}
        self.threads = max(1, threads)

    def submit(self, batch: DatumBatch) -> None:
        with self._lock:
            self._in_flight.setdefault(batch.job_id, set()).update(batch.datums)
        self._pool.submit(self._run, batch)

    def _run(self, batch: DatumBatch) -> None:
        try:
            raw = resolve_task(PROCESS_BATCH)(batch.model_dump(), objects=self._objects, runtime=self._runtime)
            outcome: BatchOutcome | BaseException = BatchOutcome.model_validate(raw)
        except BaseException as exc:  # noqa: BLE001 - surfaced to the scheduler thread by wait()
            outcome = exc
        finally:
            with self._lock:
                self._in_flight.get(batch.job_id, set()).difference_update(batch.datums)
        self._outcomes.put(outcome)

    def in_flight(self, job_id: str) -> set[int]:
        with self._lock:
            return set(self._in_flight.get(job_id, ()))

    def wait(self, timeout: float) -> list[BatchOutcome]:
        out: list[BatchOutcome] = []
        try:
            item = self._outcomes.get(timeout=timeout)
        except queue.Empty:
            return out
        while True:
            if isinstance(item, BaseException):
                raise item
            out.append(item)
            try:
                item = self._outcomes.get_nowait()
            except queue.Empty:
                return out

    def close(self, abort: bool = False) -> None:
        """Wait for running batches, then end the warm sessions and remove the scratch folders.

        abort=True (Ctrl-C, SIGTERM): queued batches are dropped and user code running now is
        killed first, so this returns within a second; those datums store no result and run
        again later."""
        release = resolve_task(RELEASE_CONTEXT)
        if abort:
            self._pool.shutdown(wait=False, cancel_futures=True)
            release(self._objects, cancel=True)
        self._pool.shutdown(wait=True, cancel_futures=True)
        release(self._objects)
