"""What to do next for one job: `decide(view) -> actions`. Pure: no I/O, no clock, no randomness.

The scheduler loop (scheduler/loop.py) observes storage and the broker once into a frozen
`JobView`, calls `decide`, and applies the actions it returns; a restart at any moment observes
again and decides the same. Everything here is a plain function of the view, so every fault the
cluster can meet is a row in a table test (tests/scheduler/test_reconcile.py).

Sent batches are hints, storage is the truth (docs/design.md, Distributed execution): a mark says a
batch was sent at some instant; once it is older than `resend_seconds` (and no batch waits in the
queue ahead of it) its datums are checked against storage: a result means done, a live lease
means a worker still runs it, anything else means lost (a killed worker, a wiped Redis, a task
that raised) and is sent again, or failed once its tries are used up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from scheduler.attempts import Attempts
from scheduler.batching import batch_size, room
from scheduler.job_records import JobState

REFRESH_SECONDS = 5.0  # results known from outcomes are re-listed from storage at least this often


@dataclass(frozen=True)
class Mark:
    """A batch as sent (or a watch on datums another worker's lease holds), broker clock."""

    key: str
    at: float
    datums: tuple[int, ...]
    watch: bool = False


@dataclass(frozen=True)
class JobView:
    """One job as observed in one pass. Indices are positions in the job's stored plan."""

    job_id: str
    state: JobState | None  # None: no status record yet
    planned: bool  # the plan is stored
    now: float  # broker clock, Unix seconds
    to_run: tuple[int, ...] = ()  # planned datums that are not skipped
    results: frozenset[int] = frozenset()  # datums with a stored result
    results_age: float = 0.0  # seconds since results were listed from storage (0: this pass)
    marks: tuple[Mark, ...] = ()
    queue_waiting: bool = False  # batches still wait in the broker's queue
    returned: frozenset[int] = frozenset()  # came back from a worker without a result
    attempts: Mapping[int, Attempts] = field(default_factory=dict)  # for datums `to_check` names
    started: float | None = None  # Unix seconds the job started running
    job_timeout: float | None = None
    datum_tries: int = 3
    stopped: bool = False
    resend_seconds: float = 20.0
    workers: int = 1
    datum_seconds: float | None = None  # median measured run time of this pipeline's datums
    batch_seconds: float = 1.0
    batch_size: int | None = None  # fixed size (tests, benchmarks); None: by measured time


# Actions --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CreateJob:
    """Write the job's info, plan and status (each step skipped when already there)."""


@dataclass(frozen=True)
class Refresh:
    """List the job's results from storage and decide again: hints do not justify this step."""


@dataclass(frozen=True)
class Send:
    """Send a batch of datums that were never sent (or whose marks were lost)."""

    datums: tuple[int, ...]


@dataclass(frozen=True)
class Resend:
    """Send again a batch of datums found lost: no result, no live lease."""

    datums: tuple[int, ...]


@dataclass(frozen=True)
class Forget:
    """Drop marks that were checked against storage."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class Watch:
    """Datums another worker's live lease holds: check them again after resend_seconds."""

    datums: tuple[int, ...]


@dataclass(frozen=True)
class FailDatum:
    """Store a FAILED result: every try was used up without one (the worker died each time)."""

    datum: int
    reason: str


@dataclass(frozen=True)
class FinishJob:
    """Every datum has a result: merge outputs, write the output commit, end the job."""


@dataclass(frozen=True)
class KillJob:
    reason: str


@dataclass(frozen=True)
class EgressOutput:
    """The output commit is finished: copy its files to egress.URL (again, after a crash), end the job."""


Action = CreateJob | Refresh | Send | Resend | Forget | Watch | FailDatum | FinishJob | KillJob | EgressOutput


# Sent batches ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SentState:
    """Where the datums of sent batches stand."""

    flying: frozenset[int]  # sent recently, or behind others in the queue: wait
    checked: tuple[str, ...]  # marks old enough to be checked against storage (to forget)
    done: frozenset[int]  # have a result
    leased: frozenset[int]  # a worker's live lease holds them
    lost: frozenset[int]  # neither: send again (or fail, tries used up)


def is_stale(mark: Mark, now: float, resend_seconds: float, queue_waiting: bool) -> bool:
    """Old enough to check against storage; a batch mark stays fresh while the queue is not empty
    (it may be waiting behind the others), a watch mark does not (it is not in the queue)."""
    return now - mark.at >= resend_seconds and (mark.watch or not queue_waiting)


def to_check(view: JobView) -> set[int]:
    """Datums whose attempts the observer must read for `decide` (stale marks, returned ones)."""
    stale = {
        i for m in view.marks if is_stale(m, view.now, view.resend_seconds, view.queue_waiting) for i in m.datums
    }
    return (stale | set(view.returned)) - set(view.results)


def classify_sent(view: JobView) -> SentState:
    """Sort the datums of every mark, and the returned ones, into flying, done, leased and lost."""
    flying: set[int] = set()
    checked: list[str] = []
    rechecked: set[int] = set(view.returned)
    for mark in view.marks:
        if is_stale(mark, view.now, view.resend_seconds, view.queue_waiting):
            checked.append(mark.key)
            rechecked.update(mark.datums)
        else:
            flying.update(mark.datums)
    done = {i for i in rechecked if i in view.results}
    leased = {
        i for i in rechecked - done - flying
        if (attempts := view.attempts.get(i)) is not None and attempts.live(view.now)
    }
    lost = rechecked - done - flying - leased
    return SentState(
        flying=frozenset(flying - view.results), checked=tuple(checked), done=frozenset(done),
        leased=frozenset(leased), lost=frozenset(lost),
    )


# Batches ---------------------------------------------------------------------------------------
def batches(datums: list[int], size: int) -> list[tuple[int, ...]]:
    return [tuple(datums[start : start + size]) for start in range(0, len(datums), size)]


# The decision ----------------------------------------------------------------------------------
def decide(view: JobView) -> list[Action]:
    """The next actions for a job, given everything observed about it."""
    if not view.planned or view.state is None or view.state == JobState.JOB_STARTING:
        return [CreateJob()]
    if view.state.terminal or view.stopped:
        return []
    if view.state == JobState.JOB_EGRESSING:
        return [EgressOutput()]
    if view.job_timeout and view.started is not None and view.now - view.started > view.job_timeout:
        return [KillJob(f"job_timeout ({view.job_timeout:g}s) passed")]
    pending = [i for i in view.to_run if i not in view.results]
    sent = classify_sent(view)
    if view.results_age > 0 and (
        not pending or view.results_age >= REFRESH_SECONDS or not set(pending) & sent.flying
    ):
        # Finishing, resending or failing a datum rests on results from storage, not on hints.
        return [Refresh()]
    if not pending:
        return [FinishJob()]
    actions: list[Action] = []
    if sent.checked:
        actions.append(Forget(sent.checked))
    if sent.leased:
        actions.append(Watch(tuple(sorted(sent.leased))))
    lost = sorted(sent.lost)
    used_up = [i for i in lost if (a := view.attempts.get(i)) is not None and a.used_up(view.datum_tries, view.now)]
    actions.extend(
        FailDatum(i, f"datum_tries ({view.datum_tries}) used up: no try stored a result (its worker died or lost its lease)")
        for i in used_up
    )
    resend = [i for i in lost if i not in set(used_up)]
    busy = sent.flying | sent.leased | set(lost)
    unsent = [i for i in pending if i not in busy]
    size = view.batch_size or batch_size(len(pending), view.workers, view.datum_seconds, view.batch_seconds)
    in_flight = len(sent.flying | sent.leased)
    allowed = room(in_flight, view.workers, size)
    resend, unsent = resend[:allowed], unsent[: max(0, allowed - len(resend))]
    actions.extend(Resend(b) for b in batches(resend, size))
    actions.extend(Send(b) for b in batches(unsent, size))
    return actions
