"""Live logs, the pure part (scheduler/logs.py): segments, order, --tail, --inputs, the cut."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from scheduler import logs
from scheduler.logs import HERD_STREAM, HeadTail, LineSplitter, LogLine
from storage import layout


def line(datum: str, attempt: int, seq: int, index: int, ts: str, message: str = "m") -> LogLine:
    return LogLine("j", datum, attempt, ts, "stdout", message, seq=seq, index=index)


# --- keys ----------------------------------------------------------------------------------


@given(st.from_regex(r"[0-9a-f]{8}", fullmatch=True), st.integers(1, 10**6), st.integers(0, 10**8 - 2))
def test_segment_keys_parse_back_and_list_in_order(datum: str, attempt: int, seq: int) -> None:
    key = layout.log_segment_key("j1", datum, attempt, seq)
    assert layout.parse_log_key(key) == (datum, attempt, seq)
    assert layout.parse_log_key(layout.log_key("j1", datum, attempt)) == (datum, attempt, None)
    assert layout.log_segment_key("j1", datum, attempt, seq) < layout.log_segment_key("j1", datum, attempt, seq + 1)


def test_segment_keys_are_pinned_and_strangers_are_skipped() -> None:
    assert layout.log_segment_key("j1", "d1", 2, 7) == "jobs/j1/logs/d1/2.00000007"
    for stranger in ("jobs/j1/logs/d1/x", "jobs/j1/logs/d1/2.7", "jobs/j1/logs/d1/2.abcdefgh", "jobs/j1/info", "jobs/j1/logs/d1/x.00000001",
                     "jobs/j1/logs/d1/2/00000001"):
        assert layout.parse_log_key(stranger) is None, stranger


# --- segments and summaries ----------------------------------------------------------------

messages = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)


@given(st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]), messages), max_size=20))
def test_segments_round_trip(items: list[tuple[str, str]]) -> None:
    records = [logs.segment_record(f"t{i}", s, m.replace("\n", " "), "w1", 3) for i, (s, m) in enumerate(items)]
    decoded = logs.decode_segment(logs.encode_segment(records), "j", "d", 3, 5, "p")
    assert [(x.stream, x.message, x.worker, x.attempt, x.seq) for x in decoded] == [
        (r["stream"], r["message"], "w1", 3, 5) for r in records
    ]


def test_a_torn_segment_record_is_named_not_fatal() -> None:
    data = logs.encode_segment([logs.segment_record("t", "stdout", "ok", "w", 1)]) + b'{"stream": "std'
    decoded = logs.decode_segment(data, "j", "d", 1, 0)
    assert decoded[0].message == "ok"
    assert decoded[1].stream == HERD_STREAM and "unreadable log record 1 in segment 0" in decoded[1].message


def test_an_old_summary_still_shows_its_output_and_reason() -> None:
    # What herd wrote before live logs: one record per attempt with the output's tails
    old = {"job_id": "j", "pipeline": "p", "datum_id": "d" * 16, "attempt": 2, "worker": "w", "reason": "exit 3",
           "stdout": "a\nb\n", "stderr": "oops\n", "ts": "2026-01-01T00:00:00+00:00"}
    shown = logs.summary_lines(old, "j", "d" * 16, 2)
    assert [(x.stream, x.message) for x in shown] == [
        ("stdout", "a"), ("stdout", "b"), ("stderr", "oops"), (HERD_STREAM, f"datum {'d' * 12} attempt 2: exit 3")]
    assert all(x.worker == "w" and x.attempt == 2 for x in shown)
    new = {"reason": "", "worker": "w"}  # a success's summary since live logs: nothing to show
    assert logs.summary_lines(new, "j", "d", 1) == []


# --- order and tail ------------------------------------------------------------------------


def test_each_datum_keeps_its_order_whatever_the_clock_and_datums_interleave_by_time() -> None:
    a = [line("a", 1, 0, 0, "t3", "a1"), line("a", 1, 0, 1, "t1", "a2"), line("a", 2, 0, 0, "t0", "a3")]
    b = [line("b", 1, 0, 0, "t2", "b1"), line("b", 1, 1, 0, "t4", "b2")]
    got = [x.message for x in logs.ordered([b[1], a[2], a[0], b[0], a[1]])]
    assert [m for m in got if m.startswith("a")] == ["a1", "a2", "a3"]  # attempt, segment, line: not the clock
    assert [m for m in got if m.startswith("b")] == ["b1", "b2"]
    assert got.index("b1") < got.index("b2")


@given(st.lists(st.integers(), max_size=30), st.one_of(st.none(), st.integers(0, 40)))
def test_tail_is_the_last_n(items: list[int], count: int | None) -> None:
    got = logs.last(items, count)
    assert got == (items if count is None else items[len(items) - min(count, len(items)):])


# --- --inputs ------------------------------------------------------------------------------


def test_inputs_match_paths_folders_and_named_inputs() -> None:
    inputs = [("in", "/a/x.txt"), ("other", "/b")]
    assert logs.input_matches(inputs, ["/a/x.txt"]) and logs.input_matches(inputs, ["a/x.txt"])
    assert logs.input_matches(inputs, ["/a"]) and logs.input_matches(inputs, ["/a/"])
    assert logs.input_matches(inputs, ["in:/a/x.txt"]) and not logs.input_matches(inputs, ["other:/a/x.txt"])
    assert logs.input_matches(inputs, ["/nope", "/b"])
    assert not logs.input_matches(inputs, ["/a/x"]) and not logs.input_matches(inputs, ["/a/x.txt2"])
    assert logs.parse_inputs(" /a, ,/b ") == ["/a", "/b"] and logs.parse_inputs(None) == []


# --- head/tail cut -------------------------------------------------------------------------


@given(st.lists(st.integers(1, 50), max_size=60), st.integers(0, 300), st.integers(0, 300))
def test_head_tail_keeps_whole_lines_in_order_and_counts_the_cut(sizes: list[int], head: int, tail: int) -> None:
    cut: HeadTail[int] = HeadTail(head, tail)
    shipped = [i for i, size in enumerate(sizes) for i in cut.add(i, size)]
    cut_bytes, cut_lines, held = cut.finish()
    kept = shipped + held
    assert kept == sorted(kept)  # in order, nothing twice
    assert sum(sizes[i] for i in shipped) <= head
    assert sum(sizes[i] for i in held) <= tail
    assert cut_lines == len(sizes) - len(kept)
    assert cut_bytes == sum(sizes) - sum(sizes[i] for i in kept)
    assert held == list(range(len(sizes) - len(held), len(sizes)))  # the tail is the last lines
    if sum(sizes) <= head:
        assert shipped == list(range(len(sizes))) and cut_bytes == 0


@given(st.lists(st.binary(max_size=40), max_size=20), st.integers(1, 16))
def test_line_splitter_rebuilds_the_stream(chunks: list[bytes], limit: int) -> None:
    splitter = LineSplitter(limit)
    got = [m for chunk in chunks for m in splitter.feed(chunk)] + list(splitter.flush())
    data = b"".join(chunks)
    assert all(len(m.encode()) <= 3 * limit for m in got)  # replacement chars are 3 bytes
    if b"\r" not in data and all(b < 128 for b in data):
        pieces = "".join(got)
        assert pieces == data.decode().replace("\n", "")


def test_raw_has_herds_names_and_log_message_has_pachctls() -> None:
    line = LogLine("j", "d", 2, "2026-01-01T00:00:00+00:00", "stderr", "hi", "w", "p")
    assert line.raw() == {
        "pipeline": "p", "job": "j", "datum": "d", "attempt": 2, "worker": "w",
        "timestamp": "2026-01-01T00:00:00+00:00", "stream": "stderr", "message": "hi"}
    assert line.log_message() == {
        "pipeline_name": "p", "job_id": "j", "worker_id": "w", "datum_id": "d", "master": False, "user": True,
        "ts": "2026-01-01T00:00:00Z", "message": "hi", "stream": "stderr", "attempt": 2}
    note = LogLine("j", "d", 1, "", HERD_STREAM, "cut", "w", "p").log_message()
    assert note["user"] is False and note["ts"] == ""
