"""Batch sizing and pacing, the one rule of both dispatchers: pure arithmetic, pinned cases."""

from __future__ import annotations

from scheduler.batching import AHEAD_PER_WORKER, Durations, batch_size, room


def test_unknown_datum_time_sends_single_datums_to_measure() -> None:
    assert batch_size(2000, 2, None, 1.0) == 1


def test_small_datums_share_a_message_of_about_batch_seconds() -> None:
    # 2,000 datums of 10 ms over 2 workers: 100 per message (1 s each), not 2,000 messages
    assert batch_size(2000, 2, 0.01, 1.0) == 100


def test_a_short_job_is_still_spread_over_every_worker() -> None:
    # 10 datums of 1 ms would fit one message; two workers still get at least two messages each
    assert batch_size(10, 2, 0.001, 1.0) == 3
    assert batch_size(1, 4, 0.001, 1.0) == 1


def test_long_datums_travel_alone() -> None:
    assert batch_size(300, 2, 30.0, 1.0) == 1


def test_tiny_measured_times_do_not_make_giant_batches() -> None:
    assert batch_size(10**6, 1, 0.0, 1.0) == 1000


def test_room_keeps_a_few_batches_per_worker_in_flight() -> None:
    assert room(0, 2, 10) == AHEAD_PER_WORKER * 2 * 10
    assert room(AHEAD_PER_WORKER * 2 * 10, 2, 10) == 0
    assert room(10**6, 2, 10) == 0


def test_durations_are_a_median_so_a_cold_start_does_not_size_the_job() -> None:
    durations = Durations()
    assert durations.get("p") is None
    for seconds in (2.5, 2.4, 0.02, 0.02, 0.03):
        durations.add("p", seconds)
    assert durations.get("p") == 0.03
    assert durations.get("other") is None
