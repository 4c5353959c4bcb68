"""bench/run.py against bench folders made here: discovery, a crashing module, --only, the exit status.

run.py runs in a subprocess (it arranges sys.path for bench modules) with its bench folder
pointed at a temp folder of tiny modules, so nothing real is measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = textwrap.dedent("""
    import importlib.util, sys
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("bench_run", sys.argv[1])
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    run.BENCH = Path(sys.argv[2])
    sys.path.append(sys.argv[2])
    sys.exit(run.main(sys.argv[3:]))
""")
GOOD = textwrap.dedent("""
    def figures(smoke):
        return [{"figure": "good figure", "herd": 2.0, "anchor": 1.0, "unit": "datums/s",
                 "target": ">= 1.5x", "note": "smoke" if smoke else "full"}]
""")
BROKEN = "def figures(smoke):\n    raise OSError('the disk is on fire')\n"
NO_FIGURES = "VALUE = 1\n"


def run_bench(folder: Path, results: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DRIVER, str(ROOT / "bench" / "run.py"), str(folder), "--results", str(results), *args],
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "good.py").write_text(GOOD)
    (folder / "plain.py").write_text(NO_FIGURES)
    return folder


def latest(results: Path) -> dict[str, object]:
    document: dict[str, object] = json.loads((results / "latest.json").read_text())
    return document


def test_a_full_run_judges_targets_and_shows_unmeasured_rows(bench_dir: Path, tmp_path: Path) -> None:
    done = run_bench(bench_dir, tmp_path / "results")
    assert done.returncode == 0, done.stderr
    document = latest(tmp_path / "results")
    rows = {r["figure"]: r for r in document["rows"]}  # type: ignore[attr-defined]
    assert rows["good figure"]["ratio"] == 2.0 and rows["good figure"]["met"] is True
    assert rows["good figure"]["note"] == "full"
    assert rows["100,000 datums enqueued"]["note"] == "not measured yet"
    assert list(document["modules"]) == ["good"]  # type: ignore[arg-type]
    assert "yes" in done.stdout


def test_a_crashing_module_is_reported_in_its_rows_and_the_exit_status(bench_dir: Path, tmp_path: Path) -> None:
    (bench_dir / "distributed.py").write_text(BROKEN)
    done = run_bench(bench_dir, tmp_path / "results", "--smoke")
    assert done.returncode == 1
    document = latest(tmp_path / "results")
    broken = [r for r in document["rows"] if "the disk is on fire" in r["note"]]  # type: ignore[attr-defined]
    assert {r["figure"] for r in broken} == {
        "distributed, 1 worker, trivial datums (local store, Docker)",
        "distributed, 2 workers vs 1, 20 ms datums",
        "1-datum change, put-file to output commit, distributed",
    }
    assert document["modules"]["distributed"]["crashed"] is True  # type: ignore[index]
    # The good module still ran after it, and the table was printed.
    assert any(r["figure"] == "good figure" for r in document["rows"])  # type: ignore[attr-defined]
    assert "the disk is on fire" in done.stdout and "OSError" in done.stderr


def test_only_runs_the_named_modules_without_placeholders(bench_dir: Path, tmp_path: Path) -> None:
    (bench_dir / "distributed.py").write_text(BROKEN)
    done = run_bench(bench_dir, tmp_path / "results", "--only", "good")
    assert done.returncode == 0, done.stderr
    rows = latest(tmp_path / "results")["rows"]
    assert [r["figure"] for r in rows] == ["good figure"]  # type: ignore[attr-defined]


def test_only_an_unknown_module_is_a_usage_error(bench_dir: Path, tmp_path: Path) -> None:
    done = run_bench(bench_dir, tmp_path / "results", "--only", "nosuch")
    assert done.returncode == 2
    assert "nosuch" in done.stderr
    assert not (tmp_path / "results").exists()
