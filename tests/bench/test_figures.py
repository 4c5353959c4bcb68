"""bench/figures.py: the ratio, the `met` decision against a target, the table and the JSON.

Pure functions, no timing: what the benchmark table says must be right whatever the machine.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.bench.loader import load_bench

figures = load_bench("figures")
positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)


def test_ratio_is_herd_over_anchor_for_rates() -> None:
    assert figures.ratio_of(80.0, 100.0, "datums/s") == pytest.approx(0.8)


def test_ratio_is_anchor_over_herd_for_times() -> None:
    # herd taking 0.5 s where the anchor takes 0.4 s is 0.8x of the anchor, as for rates.
    assert figures.ratio_of(0.5, 0.4, "s") == pytest.approx(0.8)
    assert figures.ratio_of(4.0, 60.0, "ms") == pytest.approx(15.0)


@pytest.mark.parametrize(
    ("herd", "anchor", "unit"),
    [(None, 1.0, "s"), (1.0, None, "s"), (0.0, 1.0, "s"), (1.0, 0.0, "datums/s"), (math.nan, 1.0, "s"),
     (1.0, math.inf, "datums/s")],
)
def test_no_ratio_without_two_usable_figures(herd: float | None, anchor: float | None, unit: str) -> None:
    assert figures.ratio_of(herd, anchor, unit) is None


@pytest.mark.parametrize(
    ("target", "herd", "ratio", "met"),
    [
        (">= 0.8x", 1.0, 0.8, True),
        (">= 0.8x", 1.0, 0.79, False),
        ("<= 0.15", 0.15, None, True),
        ("<= 0.15", 0.151, None, False),
        (">= 200", 250.0, None, True),
        (">= 1,500", 1499.0, None, False),
        ("<= 0.5 and <= 1.2x", 0.4, 1.1, True),
        ("<= 0.5 and <= 1.2x", 0.4, 1.3, False),
        ("<= 0.5 and <= 1.2x", 0.6, 1.0, False),
        ("-", 1.0, 1.0, None),
        ("", 1.0, 1.0, None),
        ("fast", 1.0, 1.0, None),
        (">= 0.8x", 1.0, None, None),  # no anchor measured: no verdict, not a failure
        ("<= 3", None, None, None),  # not measured: no verdict
    ],
)
def test_met_target(target: str, herd: float | None, ratio: float | None, met: bool | None) -> None:
    assert figures.met_target({"target": target, "herd": herd, "ratio": ratio}) is met


@given(herd=positive, anchor=positive, bound=st.floats(min_value=0.01, max_value=100))
def test_ratio_targets_agree_with_the_ratio(herd: float, anchor: float, bound: float) -> None:
    for unit in ("s", "datums/s"):
        row = figures.make_row("f", herd, anchor, unit, target=f">= {bound}x")
        assert row["met"] is (row["ratio"] >= float(f"{bound}"))


def test_make_row_keeps_an_explicit_ratio() -> None:
    # t(N)/t(10): a ratio that is no herd/anchor quotient in the usual direction.
    row = figures.make_row("re-run", 0.3, 0.25, "s", target="<= 0.5 and <= 1.2x", ratio=1.2)
    assert row["ratio"] == 1.2 and row["met"] is True
    assert set(row) == set(figures.KEYS)


def test_complete_fills_keys_and_drops_non_numbers() -> None:
    row = figures.complete({"figure": "x", "herd": math.inf, "anchor": "fast", "unit": "s", "target": "<= 1"})
    assert set(row) == set(figures.KEYS)
    assert row["herd"] is None and row["anchor"] is None and row["ratio"] is None and row["met"] is None
    assert row["note"] == ""
    json.dumps(row, allow_nan=False)


def test_complete_decides_met_itself() -> None:
    # A module's own `met` is not trusted: the target and the figures decide.
    row = figures.complete({"figure": "x", "herd": 5.0, "unit": "ms", "target": "<= 3", "met": True})
    assert row["met"] is False


def test_placeholders_for_planned_rows_no_module_measured() -> None:
    rows = figures.placeholders(ran=["pipeline"], reported=["100,000 datums enqueued"])
    names = {r["figure"] for r in rows}
    pipeline_rows = {p.figure for p in figures.PLANNED if p.module == "pipeline"}
    assert not names & pipeline_rows
    assert "100,000 datums enqueued" not in names
    assert "scheduler memory, one 100,000-datum job" in names
    assert all(r["note"] == figures.NOT_MEASURED and r["herd"] is None and r["met"] is None for r in rows)


def test_order_follows_the_planned_table_then_extras() -> None:
    last = figures.PLANNED[-1].figure
    first = figures.PLANNED[0].figure
    rows = [figures.make_row(n, 1.0, 1.0, "s") for n in ("extra b", last, "extra a", first)]
    assert [r["figure"] for r in figures.order_rows(rows)] == [first, last, "extra b", "extra a"]


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(None, "s", "-"), (0.0123, "s", "0.0123 s"), (1234.5, "datums/s", "1,234 datums/s"), (0.5, "", "0.5"),
     (12.34, "ms", "12.3 ms"), (0.0, "s", "0 s")],
)
def test_fmt_number(value: float | None, unit: str, text: str) -> None:
    assert figures.fmt_number(value, unit) == text


def test_table_has_every_column_and_row_and_hides_met_in_smoke() -> None:
    rows = [
        figures.make_row("put-file", 0.4, 0.34, "s", target=">= 0.8x"),
        figures.make_row("enqueue", None, None, "", target="<= 2", note=figures.NOT_MEASURED),
    ]
    full = figures.format_table(rows).splitlines()
    assert full[0].split() == list(figures.COLUMNS)
    assert len(full) == 2 + len(rows)
    assert "yes" in full[2] and figures.NOT_MEASURED in full[3]
    smoke = figures.format_table(rows, smoke=True)
    assert "yes" not in smoke and "NO" not in smoke


def test_table_cuts_long_notes() -> None:
    row = figures.make_row("x", 1.0, None, "s", note="n" * 500)
    assert max(len(line) for line in figures.format_table([row], note_width=40).splitlines()) < 120


def test_results_document_is_strict_json_with_the_row_keys() -> None:
    started = datetime(2026, 12, 2, 1, 2, 3, tzinfo=timezone.utc)
    rows = [figures.make_row("put-file", 0.4, 0.34, "s", target=">= 0.8x")]
    doc = figures.results_document(rows, smoke=True, started=started, seconds=1.5, machine={"cores": 2})
    loaded = json.loads(figures.dumps(doc))
    assert loaded["smoke"] is True and loaded["machine"] == {"cores": 2}
    assert list(loaded["rows"][0]) == list(figures.KEYS)
    assert loaded["rows"][0]["met"] is None  # a smoke run judges nothing
    assert figures.results_name(started) == "20261202T010203Z.json"


def test_failed_rows_keep_the_planned_figure_and_target() -> None:
    planned = [p for p in figures.PLANNED if p.module == "distributed"]
    rows = figures.failed_rows(planned, "crashed: OSError: boom")
    assert [(r["figure"], r["target"]) for r in rows] == [(p.figure, p.target) for p in planned]
    assert all(r["herd"] is None and r["met"] is None and r["note"] == "crashed: OSError: boom" for r in rows)


def test_a_module_s_own_rows_follow_its_planned_rows() -> None:
    # startup.py names its rows itself ("herd --help", ...): they sit where row 1 is planned.
    planned_2 = figures.PLANNED[1].figure
    rows = [figures.make_row(n, 1.0, 1.0, "s") for n in (planned_2, "extra", "herd --help, wall")]
    ordered = figures.order_rows(rows, ["storage", "pipeline", "startup"])
    assert [r["figure"] for r in ordered] == ["herd --help, wall", planned_2, "extra"]
    # A row of no module, or of an unplanned one, comes after every planned row.
    unowned = figures.order_rows([rows[1], rows[0]], [None, "storage"])
    assert [r["figure"] for r in unowned] == [planned_2, "extra"]


def test_planned_rows_take_unit_and_target_from_the_table() -> None:
    assert all(p.unit for p in figures.PLANNED)  # every row says what it is measured in
    row = figures.planned_row("100,000 datums enqueued", 1.5, None, note="n")
    assert (row["unit"], row["target"], row["met"], row["note"]) == ("s", "<= 2", True, "n")
    skipped = figures.skipped_rows(["scheduler memory, one 100,000-datum job"], "no redis")
    assert skipped[0]["unit"] == "MB" and skipped[0]["herd"] is None and skipped[0]["note"] == "no redis"
    with pytest.raises(KeyError, match="not one figure"):
        figures.planned_row("no such figure", 1.0, None)


def test_target_ratio_is_the_lower_bound_on_the_ratio() -> None:
    assert figures.target_ratio("2,000 trivial datums, embedded, local store") == pytest.approx(0.6)
    assert figures.target_ratio("put-file 256 MiB, local") == pytest.approx(0.8)


@pytest.mark.parametrize("figure", ["trivial datums, embedded, S3 store", "no such figure"])
def test_target_ratio_refuses_a_figure_without_one(figure: str) -> None:
    # row 9's target is a rate (>= 100 datums/s), not a ratio
    with pytest.raises(KeyError, match="no one ratio"):
        figures.target_ratio(figure)
