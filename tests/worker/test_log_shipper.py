"""LogShipper (worker/log_shipper.py): what user code prints is stored while it runs, in
create-only segments per attempt, bounded (head + tail + a note of the cut), never blocking.

Storage cases run on memory, the local folder and the S3 server (the `object_store` fixture);
the runtime case runs real user code in each local sandbox mode."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from scheduler.logs import HERD_STREAM, LogLine, decode_segment, ordered
from scheduler.store import PpsStore
from storage import layout
from storage.objects import ObjectStore
from tests.fixtures.services import wait_until
from tests.worker.sandboxes import ALL_MODES, mode_id, require
from worker.log_shipper import LogLimits, LogShipper
from worker.process_runtime import Isolation, ProcessRuntime
from worker.runtime import RunRequest, RunResult, UserCode


def stored(store: ObjectStore, job: str = "j") -> list[LogLine]:
    """Every segment's lines of a job, in order (what get-logs reads)."""
    records = PpsStore(store)
    lines: list[LogLine] = []
    for key in records.log_keys(job):
        parsed = layout.parse_log_key(key)
        assert parsed is not None, key
        datum, attempt, seq = parsed
        if seq is not None:
            lines += decode_segment(records.read_log_object(key) or b"", job, datum, attempt, seq)
    return ordered(lines)


def shipper(store: ObjectStore, attempt: int = 1, **limits: float) -> LogShipper:
    records = PpsStore(store)

    def put(seq: int, data: bytes) -> bool:
        return records.put_log_segment("j", "d", attempt, seq, data)

    return LogShipper(put, "w1", attempt, LogLimits(**limits))  # type: ignore[arg-type]


def messages(lines: list[LogLine]) -> list[tuple[str, str]]:
    return [(x.stream, x.message) for x in lines]


def test_lines_are_stored_while_user_code_still_prints(object_store: ObjectStore) -> None:
    # Given a shipper flushing often
    ship = shipper(object_store, flush_seconds=0.05)
    # When a first line is written, Then it is stored before the attempt ends
    ship.write("stdout", b"one\npar")
    assert wait_until(lambda: ("stdout", "one") in messages(stored(object_store)), timeout=30)
    ship.write("stdout", b"tial\n")
    ship.write("stderr", b"oops\nno newline at the end")
    ship.close()
    # And every line is stored once, in order, with its stream, worker and attempt
    lines = stored(object_store)
    assert messages(lines) == [("stdout", "one"), ("stdout", "partial"), ("stderr", "oops"),
                               ("stderr", "no newline at the end")]
    assert {(x.worker, x.attempt) for x in lines} == {("w1", 1)}
    assert ship.segments >= 2  # the first line went out alone, before the rest existed
    keys = PpsStore(object_store).log_keys("j")
    assert keys == [layout.log_segment_key("j", "d", 1, n) for n in range(len(keys))]


def test_a_retry_writes_its_own_segments_and_rewrites_none(object_store: ObjectStore) -> None:
    first = shipper(object_store, attempt=1, flush_seconds=60)
    first.write("stdout", b"try 1\n")
    first.close()
    before = {k: object_store.get(k) for k in PpsStore(object_store).log_keys("j")}
    second = shipper(object_store, attempt=2, flush_seconds=60)
    second.write("stdout", b"try 2\n")
    second.close()
    assert [(x.attempt, x.message) for x in stored(object_store)] == [(1, "try 1"), (2, "try 2")]
    assert all(object_store.get(k) == v for k, v in before.items())  # attempt 1's segments untouched


def test_past_the_head_only_the_tail_is_kept_and_the_cut_is_named(object_store: ObjectStore) -> None:
    ship = shipper(object_store, flush_seconds=60, head_bytes=20, tail_bytes=20)
    for n in range(100):
        ship.write("stdout" if n % 2 else "stderr", f"line {n:03d}\n".encode())  # 9 bytes a line
    ship.close()
    lines = stored(object_store)
    kept = [x.message for x in lines if x.stream != HERD_STREAM]
    assert kept[:2] == ["line 000", "line 001"] and kept[-2:] == ["line 098", "line 099"]
    notes = [x.message for x in lines if x.stream == HERD_STREAM]
    cut = 100 - len(kept)
    assert notes == [f"… {cut * 9} bytes cut ({cut} lines) …"]
    assert sum(len(m) + 1 for m in kept) <= 40


def test_a_full_queue_drops_lines_and_says_how_many(object_store: ObjectStore) -> None:
    # Given a queue of 20 bytes that is not shipped before the attempt ends
    ship = shipper(object_store, flush_seconds=60, queue_bytes=20)
    for n in range(10):
        ship.write("stdout", f"line {n}\n".encode())  # 7 bytes a line: 2 fit
    ship.close()
    assert messages(stored(object_store)) == [
        ("stdout", "line 0"), ("stdout", "line 1"),
        (HERD_STREAM, "8 lines dropped: user code printed faster than they could be stored"),
    ]


def test_catch_up_adds_only_what_the_runtime_appended(object_store: ObjectStore) -> None:
    ship = shipper(object_store, flush_seconds=60)
    ship.write("stdout", b"a\nb\n")
    ship.catch_up("stdout", b"a\nb\n")  # the runtime's tail: all of it was seen
    ship.write("stderr", b"x\n")
    ship.catch_up("stderr", b"x\nherd: the sandbox of this session ended while the datum ran\n")
    ship.catch_up("stdout", b"")
    ship.close()
    assert messages(stored(object_store)) == [
        ("stdout", "a"), ("stdout", "b"), ("stderr", "x"),
        ("stderr", "herd: the sandbox of this session ended while the datum ran"),
    ]


def test_a_silent_attempt_stores_nothing_and_starts_no_thread(object_store: ObjectStore) -> None:
    ship = shipper(object_store)
    ship.close()
    assert PpsStore(object_store).log_keys("j") == [] and ship.segments == 0


@pytest.mark.parametrize("mode", ALL_MODES, ids=mode_id)
def test_user_code_lines_are_stored_before_the_datum_ends(mode: Isolation, tmp_path: Path) -> None:
    # Given a datum printing a line on stdout, sleeping, then one on stderr, run with a shipper
    require(mode)
    from storage.local import LocalObjectStore

    store = LocalObjectStore(tmp_path / "store")
    pfs = tmp_path / "pfs"
    (pfs / "out").mkdir(parents=True)
    ship = shipper(store, flush_seconds=0.1)
    session = ProcessRuntime(mode).open("pipe", UserCode(image="", cmd=("sh", "-c", "echo one; sleep 3; echo two >&2")))
    results: list[RunResult] = []
    runner = threading.Thread(target=lambda: results.append(session.run(RunRequest(pfs_dir=pfs, env={}, sink=ship))))
    try:
        runner.start()
        # When the first line is stored, Then user code is still running
        assert wait_until(lambda: ("stdout", "one") in messages(stored(store)), timeout=30)
        assert runner.is_alive() and not results
        runner.join()
    finally:
        session.close()
    ship.close()
    # And both streams' lines are there once
    assert results[0].exit_code == 0
    assert messages(stored(store)) == [("stdout", "one"), ("stderr", "two")]


@pytest.mark.parametrize("transfer", ["stream", "archive"])
def test_docker_user_code_lines_are_stored_before_the_datum_ends(open_session, transfer: str, tmp_path: Path) -> None:
    # Given a Docker session and a datum that prints, sleeps, prints on stderr, then a burst
    from storage.local import LocalObjectStore

    store = LocalObjectStore(tmp_path / "store")
    pfs = tmp_path / "pfs"
    (pfs / "out").mkdir(parents=True)
    ship = shipper(store, flush_seconds=0.1)
    script = "echo one; sleep 3; echo two >&2; i=0; while [ $i -lt 500 ]; do echo burst $i; i=$((i+1)); done"
    session = open_session(script, transfer=transfer)
    results: list[RunResult] = []
    runner = threading.Thread(target=lambda: results.append(session.run(RunRequest(pfs_dir=pfs, env={}, sink=ship))))
    runner.start()
    try:
        # When the first line is stored, Then user code is still running
        assert wait_until(lambda: ("stdout", "one") in messages(stored(store)), timeout=60)
        assert runner.is_alive() and not results
    finally:
        runner.join()
    ship.catch_up("stdout", results[0].stdout)  # what the last poll had not read: the datum's end
    ship.catch_up("stderr", results[0].stderr)
    ship.close()
    # And every line is there once, in order per stream
    got = messages(stored(store))
    assert results[0].exit_code == 0
    assert [m for s, m in got if s == "stdout"] == ["one"] + [f"burst {i}" for i in range(500)]
    assert [m for s, m in got if s == "stderr"] == ["two"]


def test_a_storage_outage_loses_a_segment_says_so_and_never_reaches_user_code(object_store: ObjectStore) -> None:
    # Given storage that refuses the first segment (an outage), then answers again
    from storage.errors import StorageUnavailable

    records = PpsStore(object_store)
    calls: list[int] = []

    def put(seq: int, data: bytes) -> bool:
        calls.append(seq)
        if len(calls) == 1:
            raise StorageUnavailable("storage 'test' is down")
        return records.put_log_segment("j", "d", 1, seq, data)

    ship = LogShipper(put, "w1", 1, LogLimits(flush_seconds=0.05))
    ship.write("stdout", b"lost 1\nlost 2\n")  # user code's write returns: the outage is the shipper's
    assert wait_until(lambda: len(calls) >= 1, timeout=30)
    ship.write("stdout", b"kept\n")
    ship.close()
    # Then the next segment says how many lines were lost, and the rest is there
    assert messages(stored(object_store)) == [(HERD_STREAM, "2 lines lost: they could not be stored"),
                                              ("stdout", "kept")]
    keys = records.log_keys("j")
    assert layout.log_segment_key("j", "d", 1, 0) not in keys  # the failed number is never reused
