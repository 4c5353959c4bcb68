"""Pipeline benchmark on the embedded default (local folder storage, in-process scheduler).

Prints:
  1. trivial datums per second: 2,000 one-line files, glob /*, `cp` per datum (local runtime),
     beside the same 2,000 commands run as bare subprocesses in this process (the ratio);
  2. the time to expand 100,000 files into datums (glob /*/*, ids and hashes included), and
     the glob alone over the same 100,000 paths (/*/* and /*);
  3. the time of a re-run after adding 1 file to 10,000 already processed, and its ratio to
     the first run over the 10,000.

Usage: .venv/bin/python bench/pipeline.py [--quick]

`figures(smoke)` gives rows 7, 8, 9 and 10 of issue 15's table to bench/run.py (9 and the S3
re-run on a SeaweedFS server started here, bench/seaweed.py).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.append(str(Path(__file__).resolve().parent))  # bench/cpu.py, after herd's packages

from cpu import Spent, ceiling_note, cpu_spent, machine_ceiling_note  # noqa: E402
from s3_requests import RequestCount, requests_note  # noqa: E402
from scheduler.cli.embedded import settle  # noqa: E402
from scheduler.datums import pfs_datums  # noqa: E402
from scheduler.glob import match_nodes  # noqa: E402
from scheduler.pipelines import Pipelines  # noqa: E402
from scheduler.plan import plan_datums  # noqa: E402
from scheduler.queries import JobQueries  # noqa: E402
from scheduler.settings import SchedulerSettings  # noqa: E402
from scheduler.spec import PipelineSpec, parse_spec  # noqa: E402
from storage.local import LocalObjectStore  # noqa: E402
from storage.model import FileEntry, Manifest  # noqa: E402
from storage.repos import Pfs  # noqa: E402
from worker.settings import WorkerSettings  # noqa: E402

# What the time goes to where a target is not met (perf record -a -g, py-spy, cProfile on this
# machine's 2 cores), printed in the rows' notes.
DATUMS_FIGURE = "2,000 trivial datums, embedded, local store"
WHY_DATUMS = ("a datum is a sandboxed sh+cp (the anchor's work) plus 2 create-only records, 1 staged copy "
              "and its output read into its result; perf: ~10% of CPU in ext4's inode allocator (no journal: "
              "each new file skips the inodes freed in the last minute), ~20% idle cores; py-spy "
              "2026-12-03: the 2 records were ~28% of a datum's thread as named temp files linked, mostly "
              "the inode and directory-entry work, and are written as unnamed O_TMPFILEs since "
              "(2,000 datums, 7 interleaved pairs: median 129 -> 139 datums/s, faster in 6 of 7); the disk is "
              "not what bounds it: with the store and the scratch on tmpfs (2026-12-04, 3 rounds) herd made "
              "323-349 datums/s against the anchor's 840-877, 0.37-0.42x: the CPU a datum (above) bounds it")
WHY_RERUN = ("a re-run plans, indexes and merges only the datums whose files changed, and stores plan, index "
             "and output manifest as layers on the previous job's (docs/design.md, Layers; 2026-12-05, 2 "
             "interleaved pairs of 5 rounds: t(N) 0.198 -> 0.108 s, ratio 2.04-2.07 -> 1.15); the first re-run "
             "after a first run stores its plan whole (every datum it keeps turns skipped): the slowest round")
WHY_S3 = ("before, 3.7 requests a datum until its tiny output rode in its result, 5.7 until its batch read the "
          "inputs ahead and the merge kept the results it stored; the claim and the result are the 2 every datum "
          "must make, to a server on the same 2 cores: of a datum's 17.5-20 ms of CPU (2026-12-04, N=500, /proc) "
          "SeaweedFS took 5.9-6.8 ms and herd's process 7.7-8.9 ms, ~60% of whose active samples were "
          "botocore's request path (py-spy: the claim's PUT ~23%, the result's ~20%); a create-only PUT "
          "alone costs herd's process 1.8-2.3 ms of CPU (1,000 in a "
          "loop; until that morning about 0.3 ms more: botocore evaluated its endpoint rules again for each new "
          "key and built its User-Agent twice a request, 4 interleaved pairs: 92-116 -> 119-127 datums/s); the "
          "datums without their claim (an unsafe experiment, 2026-12-04: no lease, no try counted) made 105-145 "
          "datums/s against 83-102: one claim a batch instead of a datum is the lever left, and it changes how the "
          "scheduler, restart-datum and inspect-datum see attempts; since 2026-12-04 a worker stores each result on "
          "a thread of its own while the next datum is claimed and run (worker/result_writer.py; N=1,000, 4 "
          "interleaved pairs: 149-174 -> 165-187 datums/s)")

WHO_S3 = "SeaweedFS, herd's process, the sandboxes and user code, the median round"

COPY_SPEC = {
    "pipeline": {"name": "copy"},
    "transform": {"cmd": ["sh", "-c", "cp $in /pfs/out/"]},
    "input": {"pfs": {"repo": "in", "glob": "/*"}},
}


def fresh_pfs(root: Path) -> Pfs:
    return Pfs(LocalObjectStore(root))


def herd_width() -> str:
    """How many datums the embedded runs here run at once, for the notes."""
    return f"herd {SchedulerSettings(broker=None).parallelism} datums at once (HERD_PARALLELISM, by default cores + 1)"


def run_pipeline(pfs: Pfs) -> None:
    """The jobs owed, run as the CLI runs them, with the local runtime (HERD_RUNTIME=auto would
    pick a Docker engine wherever one answers, and the specs here name no image)."""
    settle(pfs, SchedulerSettings(broker=None), WorkerSettings(runtime="local"))


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
    manifest, spec = _expand_inputs(n)
    t0 = time.perf_counter()
    datums = plan_datums(spec, "x", "salt", {("in", "master"): ("c" * 32, manifest)}, None)
    took = time.perf_counter() - t0
    assert len(datums) == n
    return took


def where_plan_time_goes(n: int, herd: float, anchor: float) -> str:
    """Row 7's steps timed apart on the same manifest, for the note: the glob match, the datum
    rows (scheduler.datums.pfs_datums: per datum its id and its hash, two sha256 by their
    definitions, over framed fields, and a dict of its files), then the plan's objects; and
    what the match plus two bare sha256 a datum take alone."""
    from scheduler.glob import compile_glob
    from storage.collector import collector_paused

    manifest, spec = _expand_inputs(n)
    leaf = spec.input.pfs
    assert leaf is not None
    commits = {("in", "master"): ("c" * 32, manifest)}
    keys = [path.encode() for path in manifest.files]
    sha256 = hashlib.sha256
    with collector_paused():  # as plan_datums runs
        t0 = time.perf_counter()
        match_nodes(compile_glob(leaf.glob), manifest.files)
        t1 = time.perf_counter()
        pfs_datums(leaf, commits, "x", "salt")
        t2 = time.perf_counter()
        for _ in range(2):
            [sha256(key).hexdigest() for key in keys]
        t3 = time.perf_counter()
    match, rows, hashes = t1 - t0, t2 - t1, t3 - t2
    objects = max(0.0, herd - rows)
    return (f"in-process: glob match {match:.2f} s, datum ids and hashes (framed fields, two sha256 and a dict "
            f"of files a datum) {max(0.0, rows - match):.2f} s, the plan's objects (a PlannedDatum and a "
            f"PlannedInput a datum) {objects:.2f} s; the match and two bare sha256 a datum alone take "
            f"{match + hashes:.2f} s ({(match + hashes) / anchor:.1f}x the anchor, one sha256 a datum): the rest is "
            f"Python's work a datum, {(herd - match - hashes) / n * 1e6:.1f} us, already written out by hand in "
            f"pfs_datums (its loop as list comprehensions: 0.35 s against 0.32 s, 2026-12-04); the objects as "
            f"named tuples made by tuple.__new__ took planning from 0.52-0.61 to 0.42-0.45 s, but a 100,000-datum "
            f"plan then took 0.45-0.50 s to write instead of 0.29 and 1.18-1.29 s to read instead of 1.05 "
            f"(pydantic-core dumps and builds slotted dataclasses itself, named tuples only through a Python "
            f"function a datum and an input), a slower job creation: not kept (2026-12-04)")


def _expand_inputs(n: int) -> tuple[Manifest, PipelineSpec]:
    entry = FileEntry(chunks=("0" * 64,), size=1)
    manifest = Manifest(files={f"/dir{i % 100:03d}/f{i:06d}": entry for i in range(n)})
    spec = parse_spec({"pipeline": {"name": "x"}, "transform": {"cmd": ["true"]},
                       "input": {"pfs": {"repo": "in", "glob": "/*/*"}}})
    return manifest, spec


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
    _, status = JobQueries(pfs).list("copy")[0]
    return first, second, status.data_processed, status.data_skipped


def bare_nproc_wide(work: Path, n: int, cpu: list[Spent] | None = None) -> float:
    """Datums/s of the anchor: `sh -c cp` per file, as many at once as there are cores. `cpu`
    gets what the timed part spent."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "x").write_text("line\n")

    def one(i: int) -> None:
        subprocess.run(["sh", "-c", f"cp {work}/x {work}/y{i}"], check=True)

    with cpu_spent() as spent, ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(one, range(n)))
    if cpu is not None:
        cpu.append(spent)
    return n / spent.wall


def herd_datums_per_second(root: Path, n: int, make_pfs: Callable[[Path], Pfs] = fresh_pfs,
                           cpu: list[Spent] | None = None, requests: RequestCount | None = None) -> float:
    pfs = make_pfs(root)
    pfs.create_repo("in")
    pfs.put_files("in", "master", [(f"/f{i:05d}", f"line {i}\n".encode()) for i in range(n)])
    Pipelines(pfs).create(dict(COPY_SPEC))
    with cpu_spent() as spent, (requests or RequestCount()).watching(pfs.objects):
        run_pipeline(pfs)
    if cpu is not None:
        cpu.append(spent)
    return n / spent.wall


def rerun_pair(
    root: Path, n: int, rounds: int, make_pfs: Callable[[Path], Pfs] = fresh_pfs
) -> tuple[list[float], list[float], int, int]:
    """Re-run times after +1 file, over n processed files and over 10, interleaved per round:
    both pipelines run once over their files, then each round adds one file to each input."""
    pfs_pair = []
    for size in (n, 10):
        pfs = make_pfs(root / f"rerun{size}")
        pfs.create_repo("in")
        pfs.put_files("in", "master", [(f"/f{i:05d}", f"line {i}\n".encode()) for i in range(size)])
        Pipelines(pfs).create(dict(COPY_SPEC))
        run_pipeline(pfs)
        pfs_pair.append(pfs)
    times: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds):
        for pfs, out in zip(pfs_pair, times):
            pfs.put_file("in", "master", f"/new{r}", f"new line {r}\n".encode())
            t0 = time.perf_counter()
            run_pipeline(pfs)
            out.append(time.perf_counter() - t0)
    _, status = JobQueries(pfs_pair[0]).list("copy")[0]
    return times[0], times[1], status.data_processed, status.data_skipped


def anchor_expand_time(n: int) -> float:
    """The yardstick of planning: (path, hash) pairs into datums with sha256 ids, in memory."""
    pairs = [(f"/dir{i % 100:03d}/f{i:06d}", "0" * 64) for i in range(n)]
    t0 = time.perf_counter()
    datums = {hashlib.sha256(f"{path}\0{digest}".encode()).hexdigest(): (path, digest) for path, digest in pairs}
    took = time.perf_counter() - t0
    assert len(datums) == n
    return took


def _median_round(rates: list[float], spent: list[Spent]) -> Spent:
    """The CPU spent by the round whose rate is the median (the upper one of an even count)."""
    return sorted(zip(rates, spent, strict=True), key=lambda pair: pair[0])[len(rates) // 2][1]


@contextmanager
def seaweed_pfs(root: Path) -> Iterator[Callable[[Path], Pfs]]:
    """A SeaweedFS S3 server for this block; yields a maker of Pfs on a fresh prefix of its bucket.
    Its credentials, and no others, are this process's for the block (boto3 reads them there)."""
    from seaweed import aws_identity, seaweed_server

    from storage.s3 import S3ObjectStore

    with seaweed_server(root / "seaweed") as s3, aws_identity(s3.credentials):
        yield lambda folder: Pfs(S3ObjectStore(s3.bucket, prefix=f"{folder.name}-{uuid.uuid4().hex[:8]}",
                                               endpoint_url=s3.url))


def s3_figures(smoke: bool, root: Path) -> list[dict[str, object]]:
    """Rows 9 and 10 (S3) on SeaweedFS; their notes say why when it cannot start."""
    from figures import planned_row, skipped_rows
    from seaweed import SeaweedUnavailable

    names = ("trivial datums, embedded, S3 store", "re-run after +1 file among 10,000 processed, S3")
    n_dps, n_rerun, rounds = (10, 20, 1) if smoke else (500, 10_000, 3)
    try:
        with seaweed_pfs(root) as make_pfs:
            herd_rate, bare_rate, requests, spent = [], [], RequestCount(), []
            for r in range(rounds):
                herd_rate.append(herd_datums_per_second(root / f"s3dps{r}", n_dps, make_pfs, spent, requests))
                bare_rate.append(bare_nproc_wide(root / f"s3bare{r}", n_dps))
            bigs, smalls, processed, skipped = rerun_pair(root / "s3", n_rerun, 1 if smoke else 5, make_pfs)
    except SeaweedUnavailable as exc:
        return skipped_rows(names, f"skipped: {exc}")
    med = statistics.median
    big, small = med(bigs), med(smalls)
    return [
        planned_row(names[0], med(herd_rate), med(bare_rate),
                    f"N={n_dps}; SeaweedFS; cp per datum, local runtime, {herd_width()}; anchor {os.cpu_count()} wide; "
                    f"median of {rounds}; {requests_note(requests.kinds, rounds * n_dps)}; "
                    f"{machine_ceiling_note(_median_round(herd_rate, spent), n_dps, WHO_S3)}; {WHY_S3}"),
        planned_row(names[1], big, small,
                    f"{'N=' + str(n_rerun) + '; ' if smoke else ''}SeaweedFS; ratio is t(N)/t(10), medians of "
                    f"{len(bigs)}; last re-run processed {processed}, skipped {skipped}; {WHY_RERUN}",
                    ratio=big / small if small > 0 else None),
    ]


def figures(smoke: bool) -> list[dict[str, object]]:
    """Rows 7, 8, 9 and 10 of issue 15's table, herd and anchor interleaved per round."""
    from figures import make_row, planned_row, target_ratio

    n_dps, n_expand, n_rerun, rounds = (20, 5_000, 50, 1) if smoke else (2_000, 100_000, 10_000, 3)
    size = f"N={n_expand:,}; " if smoke else ""
    expand, anchor_expand = [], []
    for _ in range(rounds):
        expand.append(expand_time(n_expand))
        anchor_expand.append(anchor_expand_time(n_expand))
    globbed = glob_time(n_expand)
    herd_rate, bare_rate = [], []
    herd_cpu: list[Spent] = []
    bare_cpu: list[Spent] = []
    with tempfile.TemporaryDirectory(prefix="herd-bench-") as tmp:
        root = Path(tmp)
        for r in range(rounds):
            herd_rate.append(herd_datums_per_second(root / f"dps{r}", n_dps, cpu=herd_cpu))
            bare_rate.append(bare_nproc_wide(root / f"bare{r}", n_dps, cpu=bare_cpu))
        bigs, smalls, processed, skipped = rerun_pair(root, n_rerun, 1 if smoke else 5)
        s3_rows = s3_figures(smoke, root)
    med = statistics.median
    big, small = med(bigs), med(smalls)
    ceiling = ceiling_note(herd_cpu, bare_cpu, n_dps, med(bare_rate), target_ratio(DATUMS_FIGURE))
    return [*s3_rows,
        planned_row("commit manifest -> planned datums, 100,000 files", med(expand), med(anchor_expand),
                    f"{size}anchor: sha256 ids of (path, hash) pairs, measured here; median of {rounds}; "
                    f"{where_plan_time_goes(n_expand, med(expand), med(anchor_expand))}"),
        planned_row(DATUMS_FIGURE, med(herd_rate), med(bare_rate),
                    f"{'N=' + str(n_dps) + '; ' if smoke else ''}cp per datum, local runtime, {herd_width()}; "
                    f"anchor {os.cpu_count()} wide; median of {rounds}; "
                    f"{ceiling}; {WHY_DATUMS}"),
        planned_row("re-run after +1 file among 10,000 processed, local", big, small,
                    f"{'N=' + str(n_rerun) + '; ' if smoke else ''}ratio is t(N)/t(10), medians of {len(bigs)}; "
                    f"{WHY_RERUN}; last re-run processed {processed}, skipped {skipped}",
                    ratio=big / small if small > 0 else None),
        make_row("glob /*/* and /* over 100,000 paths, in memory", globbed, None, "s", "-",
                 f"{size}scheduler.glob.match_nodes alone, no files"),
    ]


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
