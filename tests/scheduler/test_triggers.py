"""Which input tuples a pipeline owes a job (pure), and the restart-safety of job records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from scheduler.records import PipelineInfo, job_id_for
from scheduler.triggers import Finished, job_tuples, owed_jobs
from storage.model import CommitRef, digest_fields

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
    # a pipeline record's nonce tells a pipeline made again; records without one keep their ids
    assert job_id_for("p", 1, "s", refs, "n1") != job_id_for("p", 1, "s", refs, "n2")
    assert job_id_for("p", 1, "s", refs, "n1") != job_id_for("p", 1, "s", refs)
    assert job_id_for("p", 1, "s", refs, "") == digest_fields(("p", "1", "s", *(f"{r.repo}@{r.id}" for r in refs)))[:32]


def test_without_baseline_only_later_commits_owe_jobs() -> None:
    # An update of a stopped pipeline: `since` is when the last job's inputs were finished (c1)
    history = [Finished("a", "master", f"c{i}", at(i)) for i in range(4)]
    got = ids(job_tuples([("a", "master")], {("a", "master"): history}, since=at(1), baseline=False))
    assert got == [("c2",), ("c3",)]


def test_without_baseline_and_no_later_commit_nothing_is_owed() -> None:
    history = [Finished("a", "master", "c0", at(0))]
    assert job_tuples([("a", "master")], {("a", "master"): history}, since=at(0), baseline=False) == []


def test_without_baseline_a_later_commit_pairs_with_the_other_inputs_latest() -> None:
    a = [Finished("a", "master", "a1", at(1))]
    b = [Finished("b", "master", "b1", at(2)), Finished("b", "master", "b2", at(5))]
    keys = [("a", "master"), ("b", "master")]
    assert ids(job_tuples(keys, {keys[0]: a, keys[1]: b}, since=at(3), baseline=False)) == [("a1", "b2")]


def _pipeline(**fields) -> PipelineInfo:
    return PipelineInfo(name="p", version=2, spec={}, salt="s", created=at(0), updated=at(0), **fields)


def test_owed_jobs_follow_the_pipeline_record_rule() -> None:
    history = {("a", "master"): [Finished("a", "master", f"c{i}", at(i)) for i in range(3)]}
    keys = [("a", "master")]
    running_update = owed_jobs(_pipeline(since=at(1)), keys, history)
    stopped_update = owed_jobs(_pipeline(since=at(1), baseline=False), keys, history)
    assert [t[0].id for _, t in running_update] == ["c1", "c2"]
    assert [t[0].id for _, t in stopped_update] == ["c2"]
    # the same tuple of the same version is the same job id (a restarted scheduler finds it)
    assert stopped_update[0] == running_update[1]
    assert stopped_update[0][0] == job_id_for("p", 2, "s", stopped_update[0][1])


@given(st.lists(st.integers(0, 30), max_size=15), st.integers(0, 30))
def test_without_baseline_no_tuple_is_older_than_since(times: list[int], since: int) -> None:
    history = [Finished("a", "master", f"c{n}", at(t)) for n, t in enumerate(sorted(times))]
    got = job_tuples([("a", "master")], {("a", "master"): history}, since=at(since), baseline=False)
    by_id = {c.id: c.finished for c in history}
    assert all(by_id[t[0].id] > at(since) for t in got)
    assert len(got) == sum(1 for c in history if c.finished > at(since))
