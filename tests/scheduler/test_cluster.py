"""`herd status` / `herd version` reports from observed snapshots (scheduler/cluster.py): pure, fast."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from scheduler.cluster import Probe, RunningJob, Snapshot, age, alive, redact_url, status_report, version_report

NOW = 1_800_000_000.0


def sched(name: str, beat_ago: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "host": "h1", "pid": 41, "since": NOW - 100, "version": "0.1.0",
            "heartbeat": NOW - beat_ago, "window": 6.0, **extra}


def worker(name: str, beat_ago: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "host": "h2", "pid": 7, "concurrency": 2, "runtime": "docker", "datums_done": 14,
            "version": "0.1.0", "heartbeat": NOW - beat_ago, "window": 6.0, **extra}


def distributed(**fields: Any) -> Snapshot:
    base: dict[str, Any] = {
        "now": NOW, "storage": Probe("s3://b/herd at http://s3:9000"), "broker": Probe("redis://r:6379/0"),
        "queue": "herd", "queue_depth": 3, "active": "h1-41-aa", "schedulers": (sched("h1-41-aa", 1),),
        "workers": (worker("w1", 0.5),), "storage_format": 1,
    }
    return Snapshot(**{**base, **fields})


def kinds(rows: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str]]:
    return [(kind, name, state) for kind, name, state, _ in rows]


def test_a_healthy_cluster_is_ok_and_shows_every_part() -> None:
    report = status_report(distributed(
        schedulers=(sched("h1-41-aa", 1), sched("h3-9-bb", 2, host="h3", role="standby")),
        jobs=(RunningJob("copy", "j1", "JOB_RUNNING", 3, 1, 0, 10),),
    ))
    assert report.ok and report.problems == []
    assert kinds(report.rows) == [
        ("storage", "s3://b/herd at http://s3:9000", "up"), ("broker", "redis://r:6379/0", "up"),
        ("scheduler", "h1-41-aa", "active"), ("scheduler", "h3-9-bb", "standby"), ("worker", "w1", "up"),
        ("job", "copy/j1", "running"),
    ]
    details = {name: detail for _, name, _, detail in report.rows}
    assert details["redis://r:6379/0"] == "queue 'herd': 3 batches waiting"
    assert details["h1-41-aa"].startswith("host h1, pid 41, since ") and "heartbeat 1s ago" in details["h1-41-aa"]
    assert "concurrency 2, runtime docker, 14 datums done" in details["w1"]
    assert details["copy/j1"] == "3 + 1 / 10 datums"
    assert report.raw["broker"]["queue_depth"] == 3 and report.raw["workers"][0]["datums_done"] == 14
    assert report.raw["schedulers"][0]["last_heartbeat"].endswith("Z")


def test_a_worker_past_its_window_is_named_gone_and_one_alive_suffices() -> None:
    report = status_report(distributed(workers=(worker("w1", 0.5), worker("w2", 6.5))))
    assert report.ok
    assert ("worker", "w2", "gone") in kinds(report.rows)
    # live ones first, then the gone
    assert [name for kind, name, _ in kinds(report.rows) if kind == "worker"] == ["w1", "w2"]


def test_no_live_worker_is_a_problem() -> None:
    report = status_report(distributed(workers=(worker("w2", 60),)))
    assert not report.ok
    assert report.problems == ["no worker is running: start one with herd worker"]


def test_no_scheduler_is_a_problem_and_a_dead_holder_heartbeat_is_gone() -> None:
    report = status_report(distributed(active=None, schedulers=(sched("h1-41-aa", 30),)))
    assert report.problems == ["no scheduler is running: start one with herd scheduler"]
    assert ("scheduler", "h1-41-aa", "gone") in kinds(report.rows)


def test_a_lock_holder_without_heartbeat_counts_as_active() -> None:
    # an older scheduler, or the first beat not written yet: the lock alone says it runs
    report = status_report(distributed(schedulers=()))
    assert report.ok
    assert ("scheduler", "h1-41-aa", "active") in kinds(report.rows)


def test_broker_down_is_one_problem_naming_it() -> None:
    report = status_report(distributed(broker=Probe("redis://r:6379/0", "the broker at redis://r:6379/0 is unreachable"),
                                       schedulers=(), workers=(), active=None))
    assert report.problems == ["the broker at redis://r:6379/0 is unreachable"]
    assert kinds(report.rows)[1] == ("broker", "redis://r:6379/0", "down")


def test_embedded_needs_only_storage() -> None:
    up = status_report(Snapshot(now=NOW, storage=Probe("/data/herd"), storage_format=1))
    assert up.ok and kinds(up.rows) == [("storage", "/data/herd", "up")] and up.raw["mode"] == "embedded"
    down = status_report(Snapshot(now=NOW, storage=Probe("/data/herd", "permission denied")))
    assert down.problems == ["storage /data/herd is unreachable: permission denied"]


def test_version_lists_client_storage_and_live_services_only() -> None:
    rows, raw = version_report("0.2.0", distributed(
        schedulers=(sched("h1-41-aa", 1, version="0.1.9"),), workers=(worker("w1", 1), worker("old", 600)),
    ), reads=1)
    assert rows == [("client", "herd", "0.2.0"), ("storage", "s3://b/herd at http://s3:9000", "format 1"),
                    ("scheduler", "h1-41-aa", "0.1.9"), ("worker", "w1", "0.1.0")]
    assert raw["client"] == "0.2.0" and raw["storage"]["format"] == 1 and [w["name"] for w in raw["workers"]] == ["w1"]


def test_version_says_when_the_store_is_newer() -> None:
    rows, _ = version_report("0.1.0", Snapshot(now=NOW, storage=Probe("/s"), storage_format=3), reads=1)
    assert rows[1] == ("storage", "/s", "format 3 (newer than this herd reads: 1)")


def test_passwords_never_show() -> None:
    assert redact_url("http://me:secret@s3:9000") == "http://me:***@s3:9000"
    assert redact_url("http://s3:9000") == "http://s3:9000"


@given(st.dictionaries(st.sampled_from(["heartbeat", "window", "name", "host", "pid", "datums_done", "since"]),
                       st.one_of(st.none(), st.floats(allow_nan=False), st.text(max_size=5), st.booleans(),
                                 st.integers(-5, 5))))
def test_any_record_renders_without_error(record: dict[str, Any]) -> None:
    # A heartbeat is a hint from another process (maybe another version): never a crash
    report = status_report(distributed(schedulers=(record,), workers=(record,)))
    assert len(report.rows) >= 4
    assert age(record, NOW) >= 0 and alive(record, NOW) in (True, False)


def test_the_one_shot_warning_says_no_scheduler_or_the_outage() -> None:
    from scheduler.cli.waiting import NO_SCHEDULER, warn_without_scheduler
    from storage.errors import BrokerUnavailable

    said: list[str] = []
    warn_without_scheduler(lambda: None, said.append)
    warn_without_scheduler(lambda: "h1-41-aa", said.append)  # one runs: nothing to say

    def down() -> str | None:
        raise BrokerUnavailable("the broker at redis://r:6379/0 is unreachable (read the scheduler lock): refused")

    warn_without_scheduler(down, said.append)  # an outage is not "no scheduler"
    assert said == [NO_SCHEDULER, "warning: the broker at redis://r:6379/0 is unreachable (read the scheduler lock): refused"]


def test_a_store_newer_than_this_herd_is_a_problem() -> None:
    report = status_report(Snapshot(now=NOW, storage=Probe("/s"), storage_format=2, reads_up_to=1))
    assert report.problems == ["storage /s has format 2, newer than this herd reads (format 1): upgrade herd"]
    assert status_report(Snapshot(now=NOW, storage=Probe("/s"), storage_format=1, reads_up_to=1)).ok
