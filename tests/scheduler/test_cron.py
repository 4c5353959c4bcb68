"""Cron inputs: schedules and the due tick (pure), the spec, ticking real storage (memory, local
folder, moto's S3 server), and `herd run-cron` ticking a pipeline three times with `@every 1s`
on the embedded default (local folder and S3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from croniter import croniter
from hypothesis import given
from hypothesis import strategies as st

from scheduler.cron import (
    Schedule, due_tick, last_tick, next_tick, parse_schedule, parse_tick_name, tick_name, tick_paths,
)
from scheduler.cron_ticks import CronTicker
from scheduler.datums import expand
from scheduler.pipelines import Pipelines
from scheduler.spec import parse_spec
from storage.errors import InvalidSpec
from storage.objects import ObjectStore
from storage.repos import Pfs
from tests.fixtures.s3 import FAKE_AWS_ENV, fresh_bucket

UTC = timezone.utc
T0 = datetime(2026, 12, 1, 22, 15, 3, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
HERD = ROOT / ".venv" / "bin" / "herd"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# ---- schedules --------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "* * * * *", "*/15 2-4 1,15 JAN-MAR MON-FRI", "0 0 * * SUN", "0 12 ? * *", "@daily", "@hourly", "@midnight",
    "@weekly", "@monthly", "@yearly", "@annually", "@every 30s", "@every 1h5m", "@every 1.5s", " @daily ",
])
def test_standard_schedules_parse(text: str) -> None:
    schedule = parse_schedule(text)
    assert (schedule.every is None) != (schedule.fields is None)


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty cron spec"),
    ("   ", "empty cron spec"),
    ("@every", "use '@every <duration>'"),
    ("@everyday", "use '@every <duration>'"),
    ("@every 5 minutes", "invalid duration '5 minutes'"),
    ("@every 400d", "invalid duration"),
    ("@every 9000h", "longer than"),
    ("@DAILY", "unknown descriptor"),  # robfig/cron's descriptors are lowercase
    ("@reboot", "unknown descriptor"),
    ("* * * *", "expected 5 fields"),
    ("0 * * * * *", "expected 5 fields"),  # croniter would read a sixth field as seconds
    ("60 * * * *", "out of range"),
    ("* 24 * * *", "out of range"),
    ("R * * * *", "not standard cron syntax"),  # croniter's random minute: two schedulers would disagree
    ("H * * * *", "not standard cron syntax"),  # croniter's hashed minute
    ("0 0 L * *", "not standard cron syntax"),
    ("0 0 * * 1#2", "not standard cron syntax"),
    ("0 0 * MON *", "not standard cron syntax"),  # a day name in the month field
    ("0 0 30 2 *", "never fires"),
    ("TZ=Europe/Paris 0 0 * * *", "expected 5 fields"),
    ("* * * * *" * 60, "longer than 256"),
])
def test_bad_schedules_are_refused_by_name(text: str, problem: str) -> None:
    with pytest.raises(InvalidSpec, match=problem) as caught:
        parse_schedule(text)
    assert "\n" not in caught.value.message


def test_every_keeps_whole_seconds_and_at_least_one_as_robfig_cron() -> None:
    assert parse_schedule("@every 1.9s").every == timedelta(seconds=1)
    assert parse_schedule("@every 0s").every == timedelta(seconds=1)
    assert parse_schedule("@every 300ms").every == timedelta(seconds=1)
    assert parse_schedule("@every 1h30m").every == timedelta(hours=1, minutes=30)


# ---- the due tick -----------------------------------------------------------------------------

def test_every_ticks_once_per_period_after_start() -> None:
    every = parse_schedule("@every 1s")
    assert due_tick(every, T0, None, at(0.9)) is None
    assert due_tick(every, T0, None, at(1)) == at(1)
    assert due_tick(every, T0, at(1), at(1.9)) is None
    assert due_tick(every, T0, at(1), at(2.2)) == at(2)


def test_missed_ticks_make_one_catch_up_tick_never_a_storm() -> None:
    every = parse_schedule("@every 10s")
    # An hour with nothing running: the newest scheduled time only, on the start's grid.
    assert due_tick(every, T0, at(10), at(3605)) == at(3600)
    assert due_tick(every, T0, at(3600), at(3605)) is None
    daily = parse_schedule("@daily")
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    assert due_tick(daily, start, None, datetime(2026, 12, 1, 9, tzinfo=UTC)) == datetime(2026, 12, 1, tzinfo=UTC)


def test_five_fields_tick_at_their_minutes_in_utc() -> None:
    quarter = parse_schedule("*/15 * * * *")
    assert due_tick(quarter, T0, None, at(10)) is None  # 22:15:13: next is 22:30
    assert due_tick(quarter, T0, None, datetime(2026, 12, 1, 22, 30, tzinfo=UTC)) == datetime(2026, 12, 1, 22, 30, tzinfo=UTC)
    assert due_tick(quarter, T0, None, datetime(2026, 12, 1, 23, 7, tzinfo=UTC)) == datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    assert next_tick(quarter, T0, datetime(2026, 12, 1, 23, 0, tzinfo=UTC)) == datetime(2026, 12, 1, 23, 15, tzinfo=UTC)


def test_a_start_or_last_tick_in_the_future_means_nothing_is_due() -> None:
    # Another host's clock ahead of ours, or a start the user set ahead: wait, never tick back.
    for schedule in (parse_schedule("@every 1s"), parse_schedule("* * * * *")):
        assert due_tick(schedule, at(3600), None, T0) is None
        assert due_tick(schedule, T0, at(3600), at(60)) is None


def test_a_start_without_offset_or_with_a_fraction_is_read_as_utc_whole_seconds() -> None:
    every = parse_schedule("@every 1s")
    naive = T0.replace(tzinfo=None, microsecond=500_000)
    assert due_tick(every, naive, None, at(1)) == at(1)


SCHEDULES = st.sampled_from([
    "@every 1s", "@every 7s", "@every 1m30s", "@every 1h", "* * * * *", "*/5 * * * *", "0 * * * *",
    "30 2 * * 1-5", "@daily", "0 0 1 * *", "0 0 29 2 *",
])
OFFSETS = st.floats(min_value=-1e6, max_value=1e7, allow_nan=False)


@given(SCHEDULES, OFFSETS, st.none() | OFFSETS, OFFSETS)
def test_the_due_tick_is_the_newest_scheduled_time_and_making_it_leaves_nothing_due(
    text: str, start_s: float, last_s: float | None, now_s: float,
) -> None:
    schedule = parse_schedule(text)
    start, now = at(start_s), at(now_s)
    last = None if last_s is None else at(last_s).replace(microsecond=0)
    due = due_tick(schedule, start, last, now)
    anchor = max(start, last).replace(microsecond=0) if last is not None else start.replace(microsecond=0)
    if due is None:
        upcoming = next_tick(schedule, start, last)
        assert upcoming is None or upcoming > now
        return
    assert anchor < due <= now
    assert _on_schedule(schedule, anchor, due)
    # Newest: the one after it is still to come; no storm: once made, nothing more is due now.
    following = next_tick(schedule, start, due)
    assert following is None or following > now
    assert due_tick(schedule, start, due, now) is None


def _on_schedule(schedule: Schedule, anchor: datetime, when: datetime) -> bool:
    if schedule.every is not None:
        return (when - anchor) % schedule.every == timedelta(0)
    assert schedule.fields is not None
    return bool(croniter.match(schedule.fields, when)) and when.second == 0


# ---- tick files -------------------------------------------------------------------------------

def test_tick_files_are_named_by_their_rfc3339_utc_time() -> None:
    assert tick_name(T0) == "2026-12-01T22:15:03Z"
    assert tick_name(T0.astimezone(timezone(timedelta(hours=2)))) == "2026-12-01T22:15:03Z"
    assert parse_tick_name("2026-12-01T22:15:03Z") == T0
    assert parse_tick_name("2026-12-02T00:15:03+02:00") == T0


@pytest.mark.parametrize("name", ["a.txt", "2026-13-01T00:00:00Z", "2026-12-01 22:15:03Z", "2026-12-01T22:15:03",
                                  "2026-12-01T22:15:03Zjunk", "x2026-12-01T22:15:03Z", ""])
def test_other_names_are_not_ticks(name: str) -> None:
    assert parse_tick_name(name) is None


def test_the_last_tick_is_the_newest_top_level_tick_file() -> None:
    paths = ["/2026-12-01T22:15:03Z", "/2026-12-01T22:15:05Z", "/notes.txt", "/dir/2027-01-01T00:00:00Z"]
    assert last_tick(paths) == at(2)
    assert set(tick_paths(paths)) == {"/2026-12-01T22:15:03Z", "/2026-12-01T22:15:05Z"}
    assert last_tick(["/notes.txt"]) is None


# ---- the spec ---------------------------------------------------------------------------------

def spec_with(input_: dict[str, Any], name: str = "stamp") -> dict[str, Any]:
    return {"pipeline": {"name": name}, "transform": {"cmd": ["sh", "-c", "ls /pfs/tick > /pfs/out/seen"]},
            "input": input_}


def test_a_cron_input_reads_its_repo_as_glob_star_and_defaults_the_repo_name() -> None:
    spec = parse_spec(spec_with({"cron": {"name": "tick", "spec": "@every 1s"}}))
    assert spec.input.cron is not None and spec.input.cron.repo == "stamp_tick"
    assert spec.input.kind == "cron"
    assert spec.input_repos() == {"stamp_tick"}
    [leaf] = spec.input.leaves()
    assert (leaf.name, leaf.repo, leaf.branch, leaf.glob) == ("tick", "stamp_tick", "master", "/*")
    again = parse_spec(json.loads(spec.canonical_bytes()))
    assert again == spec


def test_a_cron_input_in_a_cross_and_its_fields() -> None:
    spec = parse_spec(spec_with({"cross": [
        {"cron": {"name": "tick", "spec": "@daily", "repo": "clock", "overwrite": True,
                  "start": "2026-12-01T23:15:03+01:00"}},
        {"pfs": {"repo": "data", "glob": "/"}},
    ]}))
    cron = spec.input.children[0].cron
    assert cron is not None and (cron.repo, cron.overwrite, cron.start) == ("clock", True, T0)
    assert spec.input_repos() == {"clock", "data"}
    assert parse_spec(json.loads(spec.canonical_bytes())) == spec


@pytest.mark.parametrize(("input_", "problem"), [
    ({"cron": {"spec": "@daily"}}, "'input.cron.name' is required"),
    ({"cron": {"name": "tick"}}, "'input.cron.spec' is required"),
    ({"cron": {"name": "out", "spec": "@daily"}}, "input.cron.name: an input cannot be named 'out'"),
    ({"cron": {"name": "a/b", "spec": "@daily"}}, "input.cron.name"),
    ({"cron": {"name": "tick", "spec": "@daily", "repo": "a b"}}, "input.cron.repo"),
    ({"cron": {"name": "tick", "spec": "@daily", "every": "1s"}}, "unknown field 'input.cron.every'"),
    ({"cron": {"name": "tick", "spec": "0 0 30 2 *"}}, "input.cron.spec: invalid cron spec '0 0 30 2 \\*': it never fires"),
    ({"cron": {"name": "tick", "spec": "@daily", "start": "yesterday"}}, "input.cron.start"),
    ({"cron": {"name": "tick", "spec": "@daily"}, "pfs": {"repo": "a", "glob": "/"}}, "set exactly one of"),
    ({"cross": [{"cron": {"name": "a", "spec": "@daily"}}, {"pfs": {"repo": "a", "glob": "/"}}]},
     'name "a" was used more than once'),
])
def test_bad_cron_inputs_are_refused_naming_the_field(input_: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidSpec, match=problem):
        parse_spec(spec_with(input_))


def test_a_default_cron_repo_name_too_long_asks_for_repo() -> None:
    with pytest.raises(InvalidSpec, match="cron repo name .* is invalid .*set 'repo'"):
        parse_spec(spec_with({"cron": {"name": "t" * 20, "spec": "@daily"}}, name="p" * 50))
    parse_spec(spec_with({"cron": {"name": "t" * 20, "spec": "@daily", "repo": "ticks"}}, name="p" * 50))


def test_the_datums_of_a_cron_input_are_its_tick_files() -> None:
    from storage.model import FileEntry, Manifest

    spec = parse_spec(spec_with({"cron": {"name": "tick", "spec": "@every 1s"}}))
    entry = FileEntry(chunks=(), size=0)
    manifest = Manifest(files={"/2026-12-01T22:15:03Z": entry, "/2026-12-01T22:15:04Z": entry})
    datums = expand(spec.input, {("stamp_tick", "master"): ("c" * 32, manifest)})
    assert [d.inputs[0].glob_path for d in datums] == ["/2026-12-01T22:15:03Z", "/2026-12-01T22:15:04Z"]
    assert {d.inputs[0].name for d in datums} == {"tick"}


# ---- ticking storage (memory, local folder, S3) -----------------------------------------------

class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def pfs(object_store: ObjectStore) -> Pfs:
    return Pfs(object_store)


def create(pfs: Pfs, cron: dict[str, Any], name: str = "stamp") -> None:
    Pipelines(pfs).create(spec_with({"cron": {"name": "tick", "start": tick_name(T0), **cron}}, name=name))


def ticks_in(pfs: Pfs, repo: str = "stamp_tick") -> list[str]:
    return sorted(f.path for f in pfs.list_file(repo, "master"))


def history(pfs: Pfs, repo: str = "stamp_tick") -> list[str]:
    return [c.id for c in pfs.list_commits(repo, "master")]


def test_create_pipeline_makes_the_cron_repo_and_a_tick_commits_an_empty_file(pfs: Pfs) -> None:
    create(pfs, {"spec": "@every 1s"})
    assert pfs.inspect_repo("stamp_tick").size == 0
    clock = Clock(at(0.5))
    ticker = CronTicker(pfs, clock)
    assert ticker.tick() == ([], []) and ticker.next_due == at(1)
    assert pfs.list_branches("stamp_tick") == []  # nothing due: nothing written
    clock.now = at(1.2)
    [tick], errors = ticker.tick()
    assert errors == [] and (tick.pipeline, tick.input, tick.repo, tick.time) == ("stamp", "tick", "stamp_tick", at(1))
    assert ticks_in(pfs) == ["/2026-12-01T22:15:04Z"]
    with pfs.open_file("stamp_tick", "master", "/2026-12-01T22:15:04Z") as handle:
        assert handle.read() == b""
    assert pfs.inspect_commit("stamp_tick", "master").id == tick.commit
    assert ticker.next_due == at(2)


def test_three_periods_make_three_ticks_and_a_long_gap_one_catch_up(pfs: Pfs) -> None:
    create(pfs, {"spec": "@every 1s"})
    clock = Clock(T0)
    ticker = CronTicker(pfs, clock)
    for second in (1.1, 1.5, 2.0, 3.7, 3.9):
        clock.now = at(second)
        ticker.tick()
    assert ticks_in(pfs) == ["/2026-12-01T22:15:04Z", "/2026-12-01T22:15:05Z", "/2026-12-01T22:15:06Z"]
    clock.now = at(3600.5)  # an hour with nothing running
    [tick], _ = ticker.tick()
    assert tick.time == at(3600)
    assert len(history(pfs)) == 4


def test_overwrite_keeps_only_the_newest_tick_file(pfs: Pfs) -> None:
    create(pfs, {"spec": "@every 1s", "overwrite": True})
    clock = Clock(at(1))
    ticker = CronTicker(pfs, clock)
    ticker.tick()
    clock.now = at(2)
    ticker.tick()
    assert ticks_in(pfs) == ["/2026-12-01T22:15:05Z"]
    assert len(history(pfs)) == 2


def test_a_new_ticker_resumes_from_what_storage_says(pfs: Pfs) -> None:
    # A restarted (or standby) scheduler remembers nothing: the head's newest tick file decides.
    create(pfs, {"spec": "@every 1s"})
    CronTicker(pfs, Clock(at(1))).tick()
    assert CronTicker(pfs, Clock(at(1.9))).tick() == ([], [])
    [tick], _ = CronTicker(pfs, Clock(at(2))).tick()[0], None
    assert tick.time == at(2)


def test_racing_tickers_commit_each_scheduled_time_once(pfs: Pfs) -> None:
    create(pfs, {"spec": "@every 1s"})
    made: list[int] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        ticker = CronTicker(pfs, Clock(at(1.5)))
        barrier.wait()
        made.append(len(ticker.tick()[0]))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(made) == 1
    assert ticks_in(pfs) == ["/2026-12-01T22:15:04Z"] and len(history(pfs)) == 1


def test_a_stopped_pipeline_does_not_tick_and_catches_up_once_started(pfs: Pfs) -> None:
    create(pfs, {"spec": "@every 1s"})
    Pipelines(pfs).set_stopped("stamp", True)
    assert CronTicker(pfs, Clock(at(5))).tick() == ([], [])
    Pipelines(pfs).set_stopped("stamp", False)
    [tick], _ = CronTicker(pfs, Clock(at(5))).tick()
    assert tick.time == at(5) and len(history(pfs)) == 1


def test_a_cron_repo_deleted_by_hand_is_made_again(pfs: Pfs) -> None:
    create(pfs, {"spec": "@every 1s"})
    CronTicker(pfs, Clock(at(1))).tick()
    pfs.delete_repo("stamp_tick", force=True)
    [tick], _ = CronTicker(pfs, Clock(at(2))).tick()
    assert ticks_in(pfs) == [f"/{tick_name(tick.time)}"]


def test_the_cron_repo_may_be_named_and_may_not_be_a_pipeline_output(pfs: Pfs) -> None:
    create(pfs, {"spec": "@every 1s", "repo": "clock"})
    assert [r.name for r in pfs.list_repos()] == ["clock", "stamp"]
    before = sorted(pfs.objects.list(""))
    with pytest.raises(InvalidSpec, match="cron repo 'stamp' is the output repo of pipeline 'stamp'"):
        create(pfs, {"spec": "@daily", "repo": "stamp"}, name="other")
    assert sorted(pfs.objects.list("")) == before  # refused: nothing written


def test_delete_and_create_again_keeps_ticking_from_the_last_tick(pfs: Pfs) -> None:
    create(pfs, {"spec": "@every 1s"})
    CronTicker(pfs, Clock(at(1))).tick()
    Pipelines(pfs).delete("stamp")
    create(pfs, {"spec": "@every 1s"})  # the cron repo was kept: its ticks go on
    assert CronTicker(pfs, Clock(at(1.5))).tick() == ([], [])
    assert ticks_in(pfs) == ["/2026-12-01T22:15:04Z"]


# ---- the embedded default: `herd run-cron` ----------------------------------------------------

@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_"))}
    base["HERD_RUNTIME"] = "local"
    if request.param == "file":
        return {**base, "HERD_STORAGE": f"file://{tmp_path / 'store'}"}
    endpoint = request.getfixturevalue("moto_server").url
    return {**base, "HERD_STORAGE": f"s3://{fresh_bucket()}/herd", "AWS_ENDPOINT_URL": endpoint, **FAKE_AWS_ENV}


def herd(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(HERD), *args], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == code, f"herd {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def jobs(env: dict[str, str]) -> list[dict[str, Any]]:
    out = herd(env, "list-job", "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()] if not out.startswith("[") else json.loads(out)


def create_cli(env: dict[str, str], tmp_path: Path, spec: dict[str, Any]) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    herd(env, "create-pipeline", "-f", str(path))


def test_run_cron_ticks_three_times_and_each_tick_runs_a_job(env: dict[str, str], tmp_path: Path) -> None:
    create_cli(env, tmp_path, spec_with({"cron": {"name": "tick", "spec": "@every 1s"}}))
    proc = subprocess.Popen([str(HERD), "run-cron"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 120  # a hang fails the test instead of blocking the suite
        # Four: create-pipeline may have made the first tick already (its start, the cron repo's
        # creation, is read in whole seconds, as Pachyderm does), so run-cron makes three or more.
        while len([j for j in jobs(env) if j["state"] == "JOB_SUCCESS"]) < 4:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "fewer than three cron jobs"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    printed = [line.split()[1] for line in out.splitlines()]
    files = [p.strip("/") for p in herd(env, "list-file", "stamp_tick", "master").stdout.split()[3::3]]
    assert len(printed) >= 3 and files[-len(printed):] == printed  # one line per tick, each a file
    times = [parse_tick_name(name) for name in files]
    assert all(a is not None and b is not None and a < b for a, b in zip(times, times[1:]))
    # Every job saw the ticks so far: the newest output lists all of them.
    seen = herd(env, "get-file", "stamp", "master", "/seen").stdout.split()
    assert seen == files[:len(seen)] and len(seen) >= 3


def test_run_cron_once_after_missed_ticks_makes_one_catch_up_tick(env: dict[str, str], tmp_path: Path) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    create_cli(env, tmp_path, spec_with({"cron": {"name": "tick", "spec": "@every 1s", "start": tick_name(start)}}))
    # create-pipeline settled, which made the tick due then; an hour of missed ticks made one.
    first = herd(env, "list-file", "stamp_tick", "master").stdout.split()[3::3]
    assert len(first) == 1
    time.sleep(1.1)
    out = herd(env, "run-cron", "--once").stdout
    assert len(out.splitlines()) == 1 and "(pipeline stamp, cron input tick)" in out
    assert len(herd(env, "list-file", "stamp_tick", "master").stdout.split()[3::3]) == 2
    assert [j["state"] for j in jobs(env)] == ["JOB_SUCCESS", "JOB_SUCCESS"]


def test_a_bad_cron_spec_is_one_line_and_creates_nothing(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec_with({"cron": {"name": "tick", "spec": "R * * * *"}})))
    proc = herd(env, "create-pipeline", "-f", str(path), code=4)
    assert proc.stderr.count("\n") == 1 and "input.cron.spec: invalid cron spec 'R * * * *'" in proc.stderr
    assert herd(env, "list-repo").stdout.split()[3:] == []


@pytest.mark.parametrize("point", ["commit.after_manifest", "commit.after_commit_record"])
def test_a_tick_killed_midway_is_made_once_by_the_next_command(tmp_path: Path, point: str) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_"))}
    env = {**base, "HERD_RUNTIME": "local", "HERD_STORAGE": f"file://{tmp_path / 'store'}"}
    start = tick_name(datetime.now(UTC) - timedelta(hours=1))
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec_with({"cron": {"name": "tick", "spec": "@every 1h", "start": start}})))
    # create-pipeline's settle makes the catch-up tick, and dies inside it (as SIGKILL would)
    herd({**env, "HERD_FAILPOINTS": point}, "create-pipeline", "-f", str(path), code=137)
    assert herd(env, "list-file", "stamp_tick", "master", code=2)  # no tick landed
    # The next command makes it, once, and its job runs
    out = herd(env, "run-cron", "--once").stdout
    assert len(out.splitlines()) == 1
    assert len(herd(env, "list-file", "stamp_tick", "master").stdout.split()[3::3]) == 1
    assert len(herd(env, "list-commit", "stamp_tick", "master").stdout.splitlines()) == 2  # header + 1
    assert [j["state"] for j in jobs(env)] == ["JOB_SUCCESS"]
    assert herd(env, "run-cron", "--once").stdout == ""  # nothing more is due
