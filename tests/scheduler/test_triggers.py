"""Which input tuples a pipeline owes a job (pure), and the restart-safety of job records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from scheduler.records import job_id_for
from scheduler.triggers import Finished, job_tuples
from storage.model import CommitRef

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ids(tuples: list[tuple[CommitRef, ...]]) -> list[tuple[str, ...]]:
    return [tuple(ref.id for ref in t) for t in tuples]


def test_single_input_every_commit_oldest_first() -> None:
    history = [Finished("a", "master", f"c{i}", at(i)) for i in range(3)]
    assert ids(job_tuples([("a", "master")], {("a", "master"): history})) == [("c0",), ("c1",), ("c2",)]


def test_two_inputs_pair_with_latest_of_the_other_and_wait_for_both() -> None:
    a = [Finished("a", "master", "a1", at(1)), Finished("a", "master", "a2", at(4))]
    b = [Finished("b", "master", "b1", at(2)), Finished("b", "master", "b2", at(3))]
    keys = [("a", "master"), ("b", "master")]
    # a1 alone owes nothing (b has no commit yet); then b1, b2, a2 each trigger a job
    assert ids(job_tuples(keys, {keys[0]: a, keys[1]: b})) == [("a1", "b1"), ("a1", "b2"), ("a2", "b2")]


def test_since_runs_current_inputs_then_later_commits() -> None:
    history = [Finished("a", "master", f"c{i}", at(i)) for i in range(5)]
    got = ids(job_tuples([("a", "master")], {("a", "master"): history}, since=at(2)))
    assert got == [("c2",), ("c3",), ("c4",)]


def test_since_after_everything_still_owes_one_job() -> None:
    history = [Finished("a", "master", "c0", at(0))]
    assert ids(job_tuples([("a", "master")], {("a", "master"): history}, since=at(9))) == [("c0",)]


def test_missing_history_owes_nothing() -> None:
    assert job_tuples([("a", "master")], {}) == []


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 50)), max_size=30))
def test_tuples_are_unique_and_follow_time(events: list[tuple[str, int]]) -> None:
    keys = [("a", "master"), ("b", "master")]
    histories: dict = {k: [] for k in keys}
    for n, (repo, t) in enumerate(sorted(events, key=lambda e: e[1])):
        histories[(repo, "master")].append(Finished(repo, "master", f"{repo}{n}", at(t)))
    got = ids(job_tuples(keys, histories))
    assert len(got) == len(set(got))
    both = all(histories[k] for k in keys)
    assert (len(got) > 0) == both


def test_job_ids_are_deterministic_and_distinct() -> None:
    refs = (CommitRef(repo="a", id="1" * 32),)
    assert job_id_for("p", 1, "s", refs) == job_id_for("p", 1, "s", refs)
    assert job_id_for("p", 1, "s", refs) != job_id_for("p", 2, "s", refs)
    assert job_id_for("p", 1, "s", refs) != job_id_for("p", 1, "t", refs)
    assert len(job_id_for("p", 1, "s", refs)) == 32
