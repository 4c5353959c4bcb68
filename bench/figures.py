"""The benchmark table: its rows, the `met` decision, the text table and the JSON results.

A row is a plain dict, so a bench module returns rows without importing anything:

    {"figure": str, "herd": float | None, "anchor": float | None, "unit": str,
     "ratio": float | None, "target": str, "met": bool | None, "note": str}

`target` is a small language decided by `met_target`: ">= 0.8x" and "<= 1.2x" bound the ratio
(herd / anchor, or anchor / herd for figures where less is better, see `ratio_of`), ">= 200" and
"<= 0.15" bound herd's own figure in `unit`; several bounds joined by " and " must all hold; "-"
(or anything else) is no target, `met` None. Everything here is pure: bench/run.py does the I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Row = dict[str, Any]
KEYS = ("figure", "herd", "anchor", "unit", "ratio", "target", "met", "note")
COLUMNS = ("figure", "herd", "anchor", "ratio", "target", "met", "note")
# Units where a smaller figure is the better one: the ratio is then anchor / herd, so that
# "herd reaches 0.8x of its anchor" reads the same for times and for rates.
LOWER_IS_BETTER = frozenset({"s", "ms", "MB", "MiB"})
NOT_MEASURED = "not measured yet"
_BOUND = re.compile(r"^\s*(>=|<=)\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*(x?)\s*$")


def ratio_of(herd: float | None, anchor: float | None, unit: str) -> float | None:
    """herd relative to its anchor, > 1 meaning herd is better; None without both or with a 0."""
    if herd is None or anchor is None or not _finite(herd) or not _finite(anchor):
        return None
    if unit in LOWER_IS_BETTER:
        return anchor / herd if herd > 0 else None
    return herd / anchor if anchor > 0 else None


def _number(value: Any) -> float | None:
    """A float for the JSON, or None for what is no finite number (NaN, inf, text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if _finite(float(value)) else None


def _finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def parse_target(target: str) -> list[tuple[str, float, bool]] | None:
    """[(op, bound, on_ratio)] for "<op> <number>[x]" parts joined by " and "; None if no target."""
    bounds = []
    for part in target.split(" and "):
        found = _BOUND.match(part)
        if not found:
            return None
        op, number, x = found.groups()
        bounds.append((op, float(number.replace(",", "").replace("_", "")), x == "x"))
    return bounds or None


def met_target(row: Mapping[str, Any]) -> bool | None:
    """Whether the row's figures meet its target; None when there is no target or no figure."""
    bounds = parse_target(str(row.get("target", "")))
    if bounds is None:
        return None
    verdicts = []
    for op, bound, on_ratio in bounds:
        value = row.get("ratio") if on_ratio else row.get("herd")
        if value is None or not _finite(float(value)):
            return None
        verdicts.append(value >= bound if op == ">=" else value <= bound)
    return all(verdicts)


def make_row(
    figure: str,
    herd: float | None,
    anchor: float | None,
    unit: str,
    target: str = "-",
    note: str = "",
    ratio: float | None = None,
) -> Row:
    """A complete row: the ratio (unless given, e.g. for t(N)/t(10)) and `met` filled in."""
    row: Row = {
        "figure": figure,
        "herd": herd,
        "anchor": anchor,
        "unit": unit,
        "ratio": ratio if ratio is not None else ratio_of(herd, anchor, unit),
        "target": target,
        "met": None,
        "note": note,
    }
    row["met"] = met_target(row)
    return row


def planned_row(figure: str, herd: float | None, anchor: float | None, note: str = "",
                ratio: float | None = None) -> Row:
    """A row of a figure of issue 15's table, its unit and target as PLANNED declares them."""
    found = [p for p in PLANNED if p.figure == figure]
    if len(found) != 1:
        raise KeyError(f"'{figure}' is not one figure of PLANNED")
    return make_row(figure, herd, anchor, found[0].unit, found[0].target, note, ratio)


def target_ratio(figure: str) -> float:
    """The ratio a planned figure's target asks for at least (">= 0.6x" -> 0.6)."""
    found = [p for p in PLANNED if p.figure == figure]
    bounds = parse_target(found[0].target) if len(found) == 1 else None
    ratios = [bound for op, bound, on_ratio in bounds or () if on_ratio and op == ">="]
    if len(ratios) != 1:
        raise KeyError(f"'{figure}' has no one ratio of PLANNED's targets to reach")
    return ratios[0]


def skipped_rows(figures: Sequence[str], why: str) -> list[Row]:
    """A module's planned rows when what it needs is missing: no figures, `why` as the note."""
    return [planned_row(figure, None, None, why) for figure in figures]


def complete(row: Mapping[str, Any]) -> Row:
    """A module's row with every key present (missing ones None / ""), ratio and met decided here."""
    out: Row = {key: row.get(key) for key in KEYS}
    for key in ("herd", "anchor", "ratio"):
        out[key] = _number(out[key])
    out["figure"] = str(out["figure"] or "?")
    out["unit"] = str(out["unit"] or "")
    out["target"] = str(out["target"] or "-")
    out["note"] = str(out["note"] or "")
    if out["ratio"] is None:
        out["ratio"] = ratio_of(out["herd"], out["anchor"], out["unit"])
    out["met"] = met_target(out)
    return out


@dataclass(frozen=True)
class Planned:
    """A row of issue 15's table: which module measures it (None: none yet), anchor, target, and
    the unit its module measures it in (figures where less is better: LOWER_IS_BETTER)."""

    number: int
    figure: str
    module: str | None
    anchor: str
    target: str
    unit: str = ""


# Issue 15's table. A module that runs replaces the placeholders of the rows planned for it with
# its own rows; the others stay as "not measured yet" so the table always shows every figure.
PLANNED: tuple[Planned, ...] = (
    Planned(1, "herd list-repo / herd --help, local store, wall", "startup", "a Go CLI ~0.02 s", "<= 0.15", "s"),
    Planned(2, "put-file 256 MiB, local", "storage", "one SHA-256 pass then cp", ">= 0.8x", "s"),
    Planned(3, "get-file 256 MiB, local, verified", "storage", "one SHA-256 pass then cp", ">= 0.8x", "s"),
    Planned(4, "put / get 256 MiB, S3 (SeaweedFS)", "storage", "boto3 upload_file/download_file", ">= 0.9x", "s"),
    Planned(5, "put-file -r 100,000 small files, local", "storage", "cp -r", ">= 0.7x", "s"),
    Planned(6, "glob-file /*/* over 100,000 files", "planning", "os.walk + fnmatch", ">= 1.0x", "s"),
    Planned(7, "commit manifest -> planned datums, 100,000 files", "pipeline", "in-memory expansion 0.30 s",
            "<= 0.5", "s"),
    Planned(8, "2,000 trivial datums, embedded, local store", "pipeline", "bare sh -c cp, nproc wide",
            ">= 0.6x", "datums/s"),
    Planned(9, "trivial datums, embedded, S3 store", None, "bare sh -c cp, nproc wide", ">= 100", "datums/s"),
    Planned(10, "re-run after +1 file among 10,000 processed, local", "pipeline", "same change over 10 files",
            "<= 0.5 and <= 1.2x", "s"),
    Planned(10, "re-run after +1 file among 10,000 processed, S3", None, "same change over 10 files",
            "<= 1.5 and <= 1.2x", "s"),
    Planned(11, "1 datum writing 6,000 x 3 KB", "scale", "the same script, bare", ">= 0.7x", "s"),
    Planned(12, "distributed, 1 worker, trivial datums (local store, Docker)", "distributed",
            "Celery round trip, raw", ">= 200", "datums/s"),
    Planned(13, "distributed, 2 workers vs 1, 20 ms datums", "distributed", "raw Celery c2/c1 = 1.86x", ">= 1.8", "x"),
    Planned(14, "Docker runtime, per datum, warm", "runtime_docker", "docker exec 60 ms", "<= 3", "ms"),
    Planned(15, "1-datum change, put-file to output commit, distributed", "distributed", "-", "<= 0.3", "s"),
    Planned(16, "100,000 datums enqueued", "scale", "Celery send_task ~1,500/s", "<= 2", "s"),
    Planned(17, "scheduler memory, one 100,000-datum job", "scale", "-", "<= 300", "MB"),
)


def failed_rows(planned: Sequence[Planned], error: str) -> list[Row]:
    """Rows of a module that crashed: its planned figures and targets, no figures, the error as note."""
    return [make_row(p.figure, None, None, "", p.target, error) for p in planned]


def placeholders(ran: Iterable[str], reported: Iterable[str]) -> list[Row]:
    """Rows for planned figures that no module that ran measured (and no row names exactly)."""
    ran_set, names = set(ran), set(reported)
    return [
        make_row(p.figure, None, None, "", p.target, NOT_MEASURED)
        for p in PLANNED
        if (p.module is None or p.module not in ran_set) and p.figure not in names
    ]


def order_rows(rows: Sequence[Row], modules: Sequence[str | None] | None = None) -> list[Row]:
    """Rows in the order of issue 15's table: a planned figure at its place; another row of a
    module just after that module's planned rows (its own names, e.g. startup's two commands);
    the rest after all, each group in its own order. `modules[i]` made `rows[i]`."""
    rank = {p.figure: i for i, p in enumerate(PLANNED)}
    after: dict[str, int] = {}
    for i, p in enumerate(PLANNED):
        if p.module is not None:
            after[p.module] = i
    owners = list(modules) if modules is not None else [None] * len(rows)

    def key(pair: tuple[int, Row]) -> tuple[float, int]:
        n, row = pair
        if row["figure"] in rank:
            return rank[row["figure"]], n
        owner = owners[n]
        return (after[owner] + 0.5 if owner in after else len(rank)), n

    return [row for _, row in sorted(enumerate(rows), key=key)]


def fmt_number(value: float | None, unit: str = "") -> str:
    """Three significant digits-ish, the unit after: 0.0123 s, 1,234 datums/s, 0.91x."""
    if value is None:
        return "-"
    if not _finite(value):
        return str(value)
    size = abs(value)
    if size >= 1000:
        text = f"{value:,.0f}"
    elif size >= 100:
        text = f"{value:.0f}"
    elif size >= 10:
        text = f"{value:.1f}"
    elif size >= 1:
        text = f"{value:.2f}"
    elif size == 0:
        text = "0"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def fmt_met(met: bool | None, smoke: bool) -> str:
    if smoke or met is None:
        return "-"
    return "yes" if met else "NO"


def cells(row: Mapping[str, Any], smoke: bool) -> list[str]:
    unit = str(row.get("unit") or "")
    ratio = row.get("ratio")
    return [
        str(row.get("figure", "")),
        fmt_number(row.get("herd"), unit),
        fmt_number(row.get("anchor"), unit),
        "-" if ratio is None else f"{ratio:.2f}x",
        str(row.get("target") or "-"),
        fmt_met(row.get("met"), smoke),
        str(row.get("note") or ""),
    ]


def format_table(rows: Sequence[Mapping[str, Any]], smoke: bool = False, note_width: int = 70) -> str:
    """One plain-text table, a header and a rule, columns padded; long notes cut at note_width."""
    body = [cells(row, smoke) for row in rows]
    for line in body:
        if len(line[-1]) > note_width:
            line[-1] = line[-1][: note_width - 3] + "..."
    table = [list(COLUMNS), *body]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    numeric = {1, 2, 3}
    out = []
    for n, line in enumerate(table):
        padded = [
            cell.rjust(widths[i]) if i in numeric and n else cell.ljust(widths[i]) for i, cell in enumerate(line)
        ]
        out.append("  ".join(padded).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def results_document(
    rows: Sequence[Mapping[str, Any]],
    *,
    smoke: bool,
    started: datetime,
    seconds: float,
    machine: Mapping[str, Any],
    modules: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON written under bench/results/: when, how (smoke or not), where, per module how
    many rows and whether it crashed, and the rows."""
    return {
        "started": started.isoformat(),
        "seconds": round(seconds, 3),
        "smoke": smoke,
        "machine": dict(machine),
        "modules": {name: dict(info) for name, info in (modules or {}).items()},
        "rows": [
            {key: (None if smoke and key == "met" else row.get(key)) for key in KEYS} for row in rows
        ],
    }


def results_name(started: datetime) -> str:
    """bench/results/<UTC timestamp>.json, sortable and free of ':' for any filesystem."""
    return started.strftime("%Y%m%dT%H%M%SZ") + ".json"


def dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, allow_nan=False, default=str) + "\n"
