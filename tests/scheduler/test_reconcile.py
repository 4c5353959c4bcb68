"""`decide(view)` and the sent-batch classification: one row per situation the cluster can be in,
every fault of issue 10's matrix included, with no I/O. NOW is the broker clock of the view."""

from __future__ import annotations

import pytest

from scheduler.attempts import Attempt, Attempts
from scheduler.job_records import JobState
from scheduler.reconcile import (
    CreateJob, FailDatum, FinishJob, Forget, JobView, KillJob, Mark, Refresh, Resend, Send, Watch, classify_sent,
    decide, to_check,
)

NOW = 10_000.0
RESEND = 20.0
RUNNING = JobState.JOB_RUNNING


def view(**changes) -> JobView:
    base = dict(job_id="j", state=RUNNING, planned=True, now=NOW, to_run=(0, 1, 2, 3), resend_seconds=RESEND, workers=1)
    return JobView(**{**base, **changes})


def attempt(number: int, lease: float = -1.0, holder: str = "w1/a", **flags) -> Attempt:
    """Attempt `number` of datum d, its lease `lease` seconds from NOW (negative: expired)."""
    return Attempt(job_id="j", datum_id="d", number=number, worker="w1", holder=holder, lease_until=NOW + lease, **flags)


def attempts(*items: Attempt) -> Attempts:
    return Attempts(tuple(items))


def fresh(key: str, *datums: int, age: float = 1.0) -> Mark:
    return Mark(key, NOW - age, datums)


def stale(key: str, *datums: int) -> Mark:
    return Mark(key, NOW - RESEND - 1, datums)


def kinds(actions) -> list[str]:
    return [type(a).__name__ for a in actions]


# The job's life -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"planned": False, "state": None}, [CreateJob()]),  # the scheduler died before the plan (after_plan crash: planned, no status)
        ({"planned": True, "state": None}, [CreateJob()]),
        ({"state": JobState.JOB_STARTING}, [CreateJob()]),
        ({"state": JobState.JOB_SUCCESS}, []),
        ({"state": JobState.JOB_KILLED}, []),  # stop-job: nothing more is sent
        ({"state": JobState.JOB_UNRUNNABLE}, []),
        ({"stopped": True}, []),  # stop-pipeline
        ({"results": frozenset({0, 1, 2, 3})}, [FinishJob()]),  # crash inside finish: finish again (idempotent)
        ({"results": frozenset({0, 1, 2, 3}), "results_age": 0.5}, [Refresh()]),  # never finish on hints
        ({"to_run": ()}, [FinishJob()]),  # every datum skipped: nothing to run
        ({"job_timeout": 60.0, "started": NOW - 61}, [KillJob("job_timeout (60s) passed")]),
    ],
)
def test_job_level_decisions(changes: dict, expected: list) -> None:
    assert decide(view(**changes)) == expected


def test_a_job_within_its_timeout_runs_on() -> None:
    assert kinds(decide(view(job_timeout=60.0, started=NOW - 59))) == ["Send", "Send", "Send"]


# Sending ------------------------------------------------------------------------------------------
def test_nothing_measured_yet_sends_single_datums_a_few_per_worker() -> None:
    assert decide(view(workers=1)) == [Send((0,)), Send((1,)), Send((2,))]


def test_measured_small_datums_share_a_message() -> None:
    actions = decide(view(to_run=tuple(range(100)), workers=2, datum_seconds=0.01, batch_seconds=0.1))
    assert actions[0] == Send(tuple(range(10)))
    assert sum(len(a.datums) for a in actions) == 60  # three batches of ten per worker ahead


def test_a_fixed_batch_size_is_honoured() -> None:
    assert decide(view(batch_size=2, workers=1)) == [Send((0, 1)), Send((2, 3))]


def test_datums_in_flight_are_not_sent_again_and_fill_the_room() -> None:
    marks = (fresh("t1", 0), fresh("t2", 1), fresh("t3", 2))
    assert decide(view(marks=marks)) == []


def test_in_flight_datums_leave_room_for_the_rest() -> None:
    assert decide(view(marks=(fresh("t1", 0),))) == [Send((1,)), Send((2,))]


def test_results_known_from_outcomes_are_trusted_while_something_flies() -> None:
    v = view(results=frozenset({0}), results_age=1.0, marks=(fresh("t1", 1),))
    assert decide(v) == [Send((2,)), Send((3,))]


def test_stale_hints_are_refreshed_from_storage() -> None:
    assert decide(view(results_age=6.0, marks=(fresh("t1", 1),))) == [Refresh()]
    assert decide(view(results_age=1.0)) == [Refresh()]  # nothing in flight: hints may be wrong


# The fault matrix, row by row -----------------------------------------------------------------------
def test_fault_queue_still_holds_old_batches_keeps_waiting() -> None:
    assert decide(view(marks=(stale("t1", 0, 1, 2),), queue_waiting=True)) == []


def test_fault_slow_batch_finished_meanwhile_is_forgotten_not_resent() -> None:
    v = view(marks=(stale("t1", 0),), results=frozenset({0}), to_run=(0, 1), attempts={})
    assert decide(v) == [Forget(("t1",)), Send((1,))]


def test_fault_long_datum_with_live_lease_is_watched_not_resent() -> None:
    v = view(marks=(stale("t1", 0),), to_run=(0,), attempts={0: attempts(attempt(1, lease=5))})
    assert decide(v) == [Forget(("t1",)), Watch((0,))]


def test_fault_worker_sigkilled_mid_datum_lease_expired_is_resent() -> None:
    v = view(marks=(stale("t1", 0),), to_run=(0,), attempts={0: attempts(attempt(1, lease=-1))})
    assert decide(v) == [Forget(("t1",)), Resend((0,))]


def test_fault_pool_child_killed_before_it_claimed_is_resent() -> None:
    v = view(marks=(stale("t1", 0),), to_run=(0,), attempts={0: attempts()})
    assert decide(v) == [Forget(("t1",)), Resend((0,))]


def test_fault_redis_wiped_marks_and_queue_gone_sends_everything_again() -> None:
    # No marks, no results: the stored plan is all there is (the workers' leases make duplicates step aside).
    assert decide(view(to_run=(0, 1), marks=(), queue_waiting=False)) == [Send((0,)), Send((1,))]


def test_fault_scheduler_restarted_adopts_marks_of_the_old_one() -> None:
    v = view(to_run=(0, 1), marks=(fresh("old1", 0), fresh("old2", 1)))
    assert decide(v) == []


def test_fault_datum_killing_its_worker_every_time_fails_after_its_tries() -> None:
    dead = attempts(attempt(1), attempt(2), attempt(3))
    v = view(marks=(stale("t1", 0),), to_run=(0, 1), datum_tries=3, attempts={0: dead}, results=frozenset({1}))
    assert kinds(decide(v)) == ["Forget", "FailDatum"]
    assert "datum_tries (3) used up" in decide(v)[1].reason


def test_fault_tries_used_up_but_last_try_still_running_waits() -> None:
    running = attempts(attempt(1), attempt(2), attempt(3, lease=5))
    v = view(marks=(stale("t1", 0),), to_run=(0,), datum_tries=3, attempts={0: running})
    assert decide(v) == [Forget(("t1",)), Watch((0,))]


def test_fault_outage_given_back_attempts_use_no_try() -> None:
    outages = attempts(*(attempt(n, given_back=True, outage_at=NOW - 5) for n in (1, 2, 3)))
    v = view(marks=(stale("t1", 0),), to_run=(0,), datum_tries=1, attempts={0: outages})
    assert decide(v) == [Forget(("t1",)), Resend((0,))]


def test_fault_restarted_attempt_uses_no_try_and_is_not_live() -> None:
    restarted = attempts(attempt(1, lease=5, restarted=True))
    v = view(marks=(stale("t1", 0),), to_run=(0,), datum_tries=1, attempts={0: restarted})
    assert decide(v) == [Forget(("t1",)), Resend((0,))]


def test_returned_datum_held_elsewhere_is_watched() -> None:
    v = view(to_run=(0,), returned=frozenset({0}), attempts={0: attempts(attempt(1, lease=5))})
    assert decide(v) == [Watch((0,))]


def test_returned_datum_with_tries_used_up_is_failed_by_the_scheduler() -> None:
    v = view(to_run=(0,), returned=frozenset({0}), datum_tries=2, attempts={0: attempts(attempt(1), attempt(2))})
    assert kinds(decide(v)) == ["FailDatum"]


def test_a_stale_watch_is_checked_even_while_the_queue_is_busy() -> None:
    watch = Mark("watch-1", NOW - RESEND - 1, (0,), watch=True)
    v = view(to_run=(0,), marks=(watch,), queue_waiting=True, attempts={0: attempts(attempt(1, lease=-1))})
    assert decide(v) == [Forget(("watch-1",)), Resend((0,))]


def test_to_check_names_exactly_the_datums_whose_attempts_decide_needs() -> None:
    v = view(
        marks=(stale("t1", 0, 1), fresh("t2", 2)), returned=frozenset({3}), results=frozenset({1}),
    )
    assert to_check(v) == {0, 3}
    assert to_check(view(marks=(stale("t1", 0),), queue_waiting=True)) == set()


def test_classify_sent_sorts_every_datum_into_one_bucket() -> None:
    v = view(
        to_run=(0, 1, 2, 3, 4), marks=(stale("t1", 0, 1, 2), fresh("t2", 3)), results=frozenset({0}),
        returned=frozenset({4}), attempts={1: attempts(attempt(1, lease=3)), 2: attempts(attempt(1)), 4: attempts()},
    )
    state = classify_sent(v)
    assert (state.done, state.leased, state.lost, state.flying) == ({0}, {1}, {2, 4}, {3})
    assert state.checked == ("t1",)


# The attempt rules ----------------------------------------------------------------------------------
def test_attempt_rules() -> None:
    assert attempt(1, lease=1).live(NOW) and not attempt(1, lease=-1).live(NOW)
    assert not attempt(1, lease=1, restarted=True).live(NOW)
    assert not attempt(1, lease=1, given_back=True).live(NOW)
    history = attempts(attempt(1), attempt(2, given_back=True, outage_at=NOW - 9), attempt(3, restarted=True))
    assert history.tries_used == 1 and history.next_number == 4
    assert history.outage_since() is None  # the latest attempt met no outage
    outages = attempts(attempt(1), attempt(2, given_back=True, outage_at=NOW - 9), attempt(3, given_back=True, outage_at=NOW - 2))
    assert outages.outage_since() == NOW - 9
    assert not attempts(attempt(1), attempt(2, lease=5)).used_up(2, NOW)
    assert attempts(attempt(1), attempt(2)).used_up(2, NOW)
