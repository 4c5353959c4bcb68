"""Run every bench module, print ONE table of issue 15's figures, write it as JSON.

    .venv/bin/python bench/run.py [--smoke] [--only NAME ...]      (`make bench` runs it bare)

A bench module is any bench/*.py defining `figures(smoke: bool) -> list[dict]` (rows as in
bench/figures.py); each still runs alone through its own __main__. Modules run one after the
other in this process, in name order. One that raises gets its error in the note of the rows
planned for it and the run goes on; the exit status is 1 at the end if any module crashed.
`--smoke` runs small sizes in well under two minutes (the test suite runs it so the benches
cannot rot): its figures mean nothing, so `met` is shown as "-" and written as null.
Results: bench/results/<UTC timestamp>.json and bench/results/latest.json (ignored by git).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parent
# herd's packages first: bench/storage.py must not shadow the `storage` package. bench/ after
# them, since bench modules import each other by bare name (runtime_docker, seaweed, figures).
sys.path[:] = [str(BENCH.parent), *(p for p in sys.path if Path(p or ".").resolve() != BENCH), str(BENCH)]

import figures as table  # noqa: E402

RESULTS = BENCH / "results"
NOT_BENCHES = frozenset({"run", "figures", "seaweed", "herd_cli", "tmpfs"})


def module_names() -> list[str]:
    return sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in NOT_BENCHES and not p.stem.startswith("_"))


def planned_for(name: str) -> list[table.Planned]:
    """The rows of issue 15's table this module measures (for its error when it crashes)."""
    return [p for p in table.PLANNED if p.module == name] or [
        table.Planned(0, f"{name} (bench module)", name, "-", "-")
    ]


def load(name: str) -> ModuleType:
    """bench/<name>.py as module `bench_<name>` (its bare name may be a herd package: storage)."""
    key = f"bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[key]
        raise
    return module


def run_module(name: str, smoke: bool) -> tuple[list[dict[str, Any]], bool] | None:
    """(rows, crashed) of one module, None if it has no `figures`; when it raises, rows without
    figures carrying the error, and True."""
    try:
        module = load(name)
        measure: Callable[[bool], list[dict[str, Any]]] | None = getattr(module, "figures", None)
        if measure is None:
            return None
        rows = [table.complete(row) for row in measure(smoke)]
        return rows, False
    except BaseException as exc:  # noqa: BLE001 - one module's crash must not end the run
        if isinstance(exc, KeyboardInterrupt):
            raise
        traceback.print_exc(file=sys.stderr)
        error = f"crashed: {type(exc).__name__}: {' '.join(str(exc).split())}"
        return table.failed_rows(planned_for(name), error), True


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "node": platform.node(),
    }


def write_results(document: dict[str, Any], started: datetime, folder: Path = RESULTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = table.dumps(document)
    path = folder / table.results_name(started)
    for target in (path, folder / "latest.json"):
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(text)
        tmp.replace(target)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes, no targets judged")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="bench modules to run (e.g. pipeline storage)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the JSON results")
    args = parser.parse_args(argv)
    names = module_names()
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        parser.error(f"no bench module {', '.join(unknown)} (have: {', '.join(names)})")
    chosen = [n for n in names if not args.only or n in args.only]
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    rows: list[dict[str, Any]] = []
    owners: list[str | None] = []
    ran: list[str] = []
    crashed: list[str] = []
    modules: dict[str, dict[str, Any]] = {}
    for name in chosen:
        print(f"[bench] {name}{' (smoke)' if args.smoke else ''} ...", file=sys.stderr, flush=True)
        m0 = time.monotonic()
        outcome = run_module(name, args.smoke)
        if outcome is None:
            print(f"[bench] {name}: no figures(smoke) here, run it alone: .venv/bin/python bench/{name}.py",
                  file=sys.stderr, flush=True)
            continue
        module_rows, failed = outcome
        took = time.monotonic() - m0
        print(f"[bench] {name}: {len(module_rows)} rows in {took:.1f} s", file=sys.stderr, flush=True)
        modules[name] = {"rows": len(module_rows), "crashed": failed, "seconds": round(took, 3),
                         "figures": [r["figure"] for r in module_rows]}
        if failed:
            crashed.append(name)
        ran.append(name)
        rows.extend(module_rows)
        owners.extend([name] * len(module_rows))
    if not args.only:
        missing = table.placeholders(ran, (r["figure"] for r in rows))
        rows.extend(missing)
        owners.extend([None] * len(missing))
    rows = table.order_rows(rows, owners)
    seconds = time.monotonic() - t0
    print(table.format_table(rows, smoke=args.smoke))
    document = table.results_document(
        rows, smoke=args.smoke, started=started, seconds=seconds, machine=machine(), modules=modules
    )
    path = write_results(document, started, args.results)
    print(f"\n{'smoke run: targets not judged; ' if args.smoke else ''}{len(rows)} rows in {seconds:.0f} s, "
          f"written to {path}")
    if crashed:
        print(f"crashed: {', '.join(crashed)} (tracebacks above on stderr)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
