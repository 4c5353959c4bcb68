"""The pure parts of waiting commands: the no-scheduler watch and flush-commit's rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from scheduler import render_pps
from scheduler.cli.waiting import NO_SCHEDULER, SchedulerWatch, chain, scheduler_watch
from scheduler.job_records import JobInfo, JobState, JobStatus
from storage.errors import BrokerUnavailable
from storage.model import Commit, CommitRef

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_warns_once_after_grace_without_holder() -> None:
    watch = SchedulerWatch(grace=3)
    assert [watch.observe(None, t) for t in (10, 11, 12.9)] == [False, False, False]
    assert watch.observe(None, 13) is True
    assert [watch.observe(None, t) for t in (14, 100)] == [False, False]


def test_a_holder_resets_the_grace() -> None:
    watch = SchedulerWatch(grace=3)
    watch.observe(None, 0)
    watch.observe("host-1-abc", 2.5)  # a scheduler took the lock: the gap was a hand-over
    assert watch.observe(None, 4) is False
    assert watch.observe(None, 6.9) is False
    assert watch.observe(None, 7) is True


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 5)), max_size=40))
def test_never_warns_twice_nor_while_held(steps: list[tuple[bool, float]]) -> None:
    watch, now, warnings = SchedulerWatch(grace=2), 0.0, 0
    for held, step in steps:
        now += step
        said = watch.observe("h" if held else None, now)
        assert not (said and held)
        warnings += said
    assert warnings <= 1


def test_callback_probes_at_most_once_a_second_and_says_it_once() -> None:
    clock, probes, said = [0.0], [], []

    def probe() -> None:
        probes.append(clock[0])
        return None

    on_wait = scheduler_watch(probe, said.append, grace=2, clock=lambda: clock[0])
    for _ in range(60):
        on_wait("p", 0, 1)
        clock[0] += 0.1
    assert len(probes) == 6 and said == [NO_SCHEDULER]


def test_callback_names_a_broker_outage_once_and_never_says_no_scheduler_for_it() -> None:
    clock, said = [0.0], []

    def probe() -> None:
        raise BrokerUnavailable("the broker at redis://x:1/0 is unreachable (read the scheduler lock): refused")

    on_wait = scheduler_watch(probe, said.append, grace=0, clock=lambda: clock[0])
    for _ in range(5):
        on_wait()
        clock[0] += 2
    assert said == ["warning: the broker at redis://x:1/0 is unreachable (read the scheduler lock): refused"]


def test_chain_calls_each_callback() -> None:
    calls: list[tuple] = []
    assert chain(None, None) is None
    chain(None, lambda *a: calls.append(("a", *a)), lambda *a: calls.append(("b", *a)))("p", 1, 2)
    assert calls == [("a", "p", 1, 2), ("b", "p", 1, 2)]


def _job(state: JobState, reason: str = "", output: str | None = None) -> tuple[JobInfo, JobStatus]:
    info = JobInfo(id="f" * 32, pipeline="stage2", pipeline_version=1, salt="s", created=T0,
                   inputs=(CommitRef(repo="stage1", id="a" * 32),), output_repo="stage2", output_branch="master")
    return info, JobStatus(state=state, reason=reason, output_commit=output, started=T0, finished=T0)


def test_flush_row_without_output_commit_shows_the_job_and_its_state() -> None:
    info, status = _job(JobState.JOB_KILLED, reason="job_timeout (1.0s) passed")
    row = render_pps.flush_row(info, status, None, T0)
    assert len(row) == len(render_pps.FLUSH_HEADERS)
    assert row[:2] == ("stage2", "<none>") and row[-2:] == ("f" * 32, "killed: job_timeout (1.0s) passed")
    raw = render_pps.flush_raw(info, status, None)
    assert raw["commit"] is None and raw["job"]["state"] == "JOB_KILLED"


def test_flush_row_with_a_failed_output_commit() -> None:
    info, status = _job(JobState.JOB_UNRUNNABLE, reason="inputs failed: stage1@" + "a" * 32, output="f" * 32)
    commit = Commit(id="f" * 32, repo="stage2", branch="master", started=T0, finished=T0 + timedelta(seconds=2),
                    failed_reason=status.reason)
    row = render_pps.flush_row(info, status, commit, T0 + timedelta(seconds=5))
    assert row[:2] == ("stage2", "f" * 32) and row[-1].startswith("unrunnable: inputs failed: stage1@aa")
    raw = render_pps.flush_raw(info, status, commit)
    assert raw["commit"] == {"repo": {"name": "stage2"}, "id": "f" * 32}
    assert raw["error"] == status.reason and raw["job"]["state"] == "JOB_UNRUNNABLE"
    assert raw["job"]["output_commit"]["id"] == "f" * 32
