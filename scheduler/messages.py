"""The wire between scheduler and workers: task names, the batch message, Redis settings. Pure.

A message carries only the job id and which datums of its stored plan to run: the plan itself
lives in storage (written before anything is enqueued), so a message stays small however large
the datums are, and a lost or duplicated message can be replayed harmlessly.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

PROCESS_BATCH = "herd.process_batch"

# Redis settings of the queue, the same on both ends (the scheduler's and the worker's Celery app).
SOCKET_TIMEOUT = 5.0  # a vanished broker must not block a publish, an ack or the scheduler forever
HEALTH_CHECK_INTERVAL = 10  # seconds; half-open broker connections are dropped and redone
OUTCOME_TTL = 3600  # seconds; batch outcomes expire in Redis after this (Celery's result_expires)
# How both ends of the wire (the scheduler's client apps, the worker's app) talk to Redis and
# encode messages: one place, so they cannot drift apart.
BROKER_CONNECTION = {
    "socket_timeout": SOCKET_TIMEOUT,
    "socket_connect_timeout": SOCKET_TIMEOUT,
    "health_check_interval": HEALTH_CHECK_INTERVAL,
}
WIRE_CONF = {
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "redis_socket_timeout": SOCKET_TIMEOUT,
    "redis_socket_connect_timeout": SOCKET_TIMEOUT,
    "redis_backend_health_check_interval": HEALTH_CHECK_INTERVAL,
    # The batch outcome is a progress hint for the scheduler (expires; storage is the truth).
    "result_expires": OUTCOME_TTL,
}

MESSAGE_VERSION = 1


class DatumBatch(BaseModel):
    """Run these datums (indices into the job's stored plan)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = MESSAGE_VERSION
    job_id: str
    datums: tuple[int, ...] = Field(min_length=1)


class BatchOutcome(BaseModel):
    """What a worker reports back: a hint only; the records in storage are the truth."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    job_id: str
    done: tuple[int, ...] = ()
    failed: tuple[int, ...] = ()
    deferred: tuple[int, ...] = ()  # another worker holds a live lease on these
    used_up: tuple[int, ...] = ()  # no try left: the scheduler fails them (it decides, not the worker)
    seconds: tuple[float, ...] = ()  # run time of each datum run here (batch sizes follow them)
