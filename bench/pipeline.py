"""Pipeline benchmark on the embedded default (local folder storage, in-process scheduler).

Prints:
  1. trivial datums per second: 2,000 one-line files, glob /*, `cp` per datum (local runtime),
     beside the same 2,000 commands run as bare subprocesses in this process (the ratio);
  2. the time to expand 100,000 files into datums (glob /*/*, ids and hashes included), and
     the glob alone over the same 100,000 paths (/*/* and /*);
  3. the time of a re-run after adding 1 file to 10,000 already processed, and its ratio to
     the first run over the 10,000.

Usage: .venv/bin/python bench/pipeline.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduler.cli.embedded import settle  # noqa: E402
from scheduler.glob import match_nodes  # noqa: E402
from scheduler.pipelines import Pipelines  # noqa: E402
from scheduler.plan import plan_datums  # noqa: E402
from scheduler.queries import Jobs  # noqa: E402
from scheduler.settings import SchedulerSettings  # noqa: E402
from scheduler.spec import parse_spec  # noqa: E402
from storage.local import LocalObjectStore  # noqa: E402
from storage.model import FileEntry, Manifest  # noqa: E402
from storage.repos import Pfs  # noqa: E402

COPY_SPEC = {
    "pipeline": {"name": "copy"},
    "transform": {"cmd": ["sh", "-c", "cp $in /pfs/out/"]},
    "input": {"pfs": {"repo": "in", "glob": "/*"}},
}


def fresh_pfs(root: Path) -> Pfs:
    return Pfs(LocalObjectStore(root))


def run_pipeline(pfs: Pfs) -> None:
    settle(pfs, SchedulerSettings(broker=None))


def datums_per_second(root: Path, n: int) -> tuple[float, float]:
    pfs = fresh_pfs(root / "dps")
    pfs.create_repo("in")
    pfs.put_files("in", "master", [(f"/f{i:05d}", f"line {i}\n".encode()) for i in range(n)])
    Pipelines(pfs).create(dict(COPY_SPEC))
    t0 = time.perf_counter()
    run_pipeline(pfs)
    herd = time.perf_counter() - t0
    work = root / "bare"
    work.mkdir()
    (work / "x").write_text("line\n")
    t0 = time.perf_counter()
    for i in range(n):
        subprocess.run(["sh", "-c", f"cp {work}/x {work}/y{i}"], check=True)
    bare = time.perf_counter() - t0
    return n / herd, n / bare


def expand_time(n: int) -> float:
    entry = FileEntry(chunks=("0" * 64,), size=1)
    manifest = Manifest(files={f"/dir{i % 100:03d}/f{i:06d}": entry for i in range(n)})
    spec = parse_spec({"pipeline": {"name": "x"}, "transform": {"cmd": ["true"]},
                       "input": {"pfs": {"repo": "in", "glob": "/*/*"}}})
    t0 = time.perf_counter()
    datums = plan_datums(spec, "x", "salt", {("in", "master"): ("c" * 32, manifest)}, None)
    took = time.perf_counter() - t0
    assert len(datums) == n
    return took


def glob_time(n: int) -> float:
    paths = [f"/d{i % 100:03d}/f{i:06d}.txt" for i in range(n)]
    t0 = time.perf_counter()
    assert len(match_nodes("/*/*", paths)) == n
    assert len(match_nodes("/*", paths)) == 100
    return time.perf_counter() - t0


def rerun(root: Path, n: int) -> tuple[float, float, int, int]:
    pfs = fresh_pfs(root / "rerun")
    pfs.create_repo("in")
    pfs.put_files("in", "master", [(f"/f{i:05d}", f"line {i}\n".encode()) for i in range(n)])
    Pipelines(pfs).create(dict(COPY_SPEC))
    t0 = time.perf_counter()
    run_pipeline(pfs)
    first = time.perf_counter() - t0
    pfs.put_file("in", "master", "/new", b"new line\n")
    t0 = time.perf_counter()
    run_pipeline(pfs)
    second = time.perf_counter() - t0
    _, status = Jobs(pfs).list("copy")[0]
    return first, second, status.data_processed, status.data_skipped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    n_dps, n_expand, n_rerun = (200, 10_000, 1_000) if args.quick else (2_000, 100_000, 10_000)
    print(f"herd pipeline benchmark ({os.cpu_count()} cores, embedded default, local runtime)")
    with tempfile.TemporaryDirectory(prefix="herd-bench-") as tmp:
        root = Path(tmp)
        herd_rate, bare_rate = datums_per_second(root, n_dps)
        print(f"trivial datums ({n_dps} files, glob /*):  {herd_rate:8.1f} datums/s"
              f"   bare subprocess: {bare_rate:8.1f} /s   ratio {herd_rate / bare_rate:.2f}")
        took = expand_time(n_expand)
        print(f"expand {n_expand} files into datums:        {took:8.2f} s")
        print(f"glob /*/* and /* over {n_expand} paths:     {glob_time(n_expand):8.2f} s")
        first, second, processed, skipped = rerun(root, n_rerun)
        print(f"first run over {n_rerun} files:           {first:8.2f} s")
        print(f"re-run after adding 1 file:              {second:8.2f} s   "
              f"(processed {processed}, skipped {skipped}; ratio to first run {second / first:.3f})")


if __name__ == "__main__":
    main()
