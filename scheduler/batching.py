"""How many datums share one message, and how many are sent ahead. Pure.

One Celery message per datum caps herd near 500 datums/s (a Celery round trip costs 2-4 ms),
so small datums share a message carrying about HERD_BATCH_SECONDS of work; yet a job of a few
long datums must reach every worker, so a job is cut into at least two messages per worker. Datum
times are measured from stored results (a median, so a container's cold start does not size
the whole job). Only a few batches per worker are in flight at a time: later batches are sized
by better measurements, and the queue stays short for the next job.
"""

from __future__ import annotations

import math
import statistics
from collections import deque

MIN_SECONDS = 1e-3  # below this a measured time is noise; it would make one giant batch
AHEAD_PER_WORKER = 3  # batches in flight per worker: one running, the next ones waiting
WINDOW = 15  # measured datum times kept per pipeline


def batch_size(pending: int, workers: int, datum_seconds: float | None, batch_seconds: float) -> int:
    """Datums per message for `pending` datums of `datum_seconds` each (None: unknown yet)."""
    if datum_seconds is None:
        return 1  # measure first
    spread = max(1, math.ceil(pending / (2 * max(1, workers))))
    by_time = max(1, int(batch_seconds / max(datum_seconds, MIN_SECONDS)))
    return min(spread, by_time)


def room(in_flight: int, workers: int, size: int) -> int:
    """How many more datums to send now, given `in_flight` of this job already sent."""
    return max(0, AHEAD_PER_WORKER * max(1, workers) * size - in_flight)


class Durations:
    """Recent datum run times per pipeline; `get` is their median (seconds)."""

    def __init__(self) -> None:
        self._recent: dict[str, deque[float]] = {}

    def add(self, pipeline: str, seconds: float) -> None:
        self._recent.setdefault(pipeline, deque(maxlen=WINDOW)).append(seconds)

    def get(self, pipeline: str) -> float | None:
        recent = self._recent.get(pipeline)
        return statistics.median(recent) if recent else None
