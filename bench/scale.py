"""Scale: one datum writing thousands of small files, a 100,000-datum job enqueued, and the
scheduler's memory over that job.

    .venv/bin/python bench/scale.py [--smoke] [--rounds 3] [--files 6000] [--datums 100000]

Three figures of issue 15's table, for bench/run.py through `figures(smoke)`:

- row 11: an embedded pipeline (local store, local runtime: the default) whose single datum
  writes N x 3 KB files (random bytes, so no two dedup) to /pfs/out, timed over the whole
  `settle` (job created to output commit), against the same script run bare into a folder;
  rounds interleaved, medians. Store, scratch and the bare folder are on tmpfs (bench/tmpfs.py).
- row 16: a real redis-server started here and no workers. The scheduler (`Scheduler` over a
  `CeleryDispatcher`, as `herd scheduler` runs them) takes ONE reconcile pass over a new pipeline
  whose input holds 100,000 files: it creates the job, plans its 100,000 datums, writes the plan
  and sends batches. The job's spec says 34 workers and the scheduler has a fixed batch of 1,000
  datums (what scheduler/batching.py picks for datums measured at <= 1 ms), so the pass's room
  (3 batches per worker) covers the whole job and hands every datum to the broker; the broker's
  sent marks and the queue's length are checked against it. Anchor: raw `send_task` of tiny
  messages through the dispatcher's own Celery app, as a rate (the time 100,000 such messages
  would take is the anchor column).
- row 17: a `herd scheduler` process (HERD_BROKER at that redis-server, local store) plans and
  dispatches a 100,000-datum job; its peak RSS (VmHWM) is read from /proc once it has sent the
  job's batches and made a few passes more; its peak before the pipeline existed is in the note.
  Without measured datum times it sends one datum per message, 3 per worker ahead
  (scheduler/batching.py), so its planning dominates what it holds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # herd's packages before bench/storage.py

from scheduler.cli.embedded import settle  # noqa: E402
from scheduler.pipelines import Pipelines  # noqa: E402
from scheduler.queries import JobQueries  # noqa: E402
from scheduler.settings import SchedulerSettings  # noqa: E402
from storage.local import LocalObjectStore  # noqa: E402
from storage.repos import Pfs  # noqa: E402
from worker.settings import WorkerSettings  # noqa: E402

if TYPE_CHECKING:
    import redis
    from distributed import Processes

FIGURES = (
    "1 datum writing 6,000 x 3 KB",
    "100,000 datums enqueued",
    "scheduler memory, one 100,000-datum job",
)

# The user code of row 11, herd's datum and the bare anchor alike: N files of 3 KB of random bytes.
WRITE_SCRIPT = (
    "import os, sys\n"
    "out, n = sys.argv[1], int(sys.argv[2])\n"
    "for i in range(n):\n"
    "    with open(os.path.join(out, f'f{i:05d}'), 'wb') as f:\n"
    "        f.write(os.urandom(3072))\n"
)
# The system's python runs the script, in the datum and bare alike: user code sees a private
# /tmp, so a virtualenv under /tmp (a CI clone's) is not there for it.
# Where row 11's time goes (cProfile of worker.outputs.collect_datum_outputs over 6,000 files of
# 3 KB on tmpfs, and the settle's own timing, 2026-12-02): herd must read back, hash and store
# every output file, which the bare script does not.
WHY_MANY_FILES = ("herd's time (cProfile, 2026-12-02): the user script as bare (~0.09 s), collecting its 6,000 "
                  "outputs ~0.12 s (~20 us a file: reopened by fd and checked, read, SHA-256, copied into one "
                  "pack; linked one by one as blobs it was 0.20 s), the job's own steps ~0.1 s (plan, the merge "
                  "of the datum's result, the output commit); reading back and hashing each output alone is "
                  "~10 us a file, so herd's floor is about 0.09 + 0.06 + 0.1 s, a ratio near 0.35x while every "
                  "output is verified and committed; 2026-12-03: each output is read through its descriptor, "
                  "not a file object (13.3 -> 8.9 us a file of 3 KB), and the collection's share is now "
                  "0.24-0.30 s of herd's 0.6-0.8 s on a machine about twice as slow at Python")
# Where row 17's peak comes from, measured stage by stage in one process (VmRSS and VmHWM before
# and after each step of scheduler.lifecycle.create_job on a local store, 2026-12-02).
WHY_MEMORY = ("where the peak comes from (create_job in one process, VmRSS/VmHWM per step): the input commit's "
              "manifest of 100,000 packed entries takes ~150 MB parsed (~1 KB an entry: pydantic's instance dict "
              "184 B and fields-set 216 B, a chunk id and a pack id of 113 B each, the path), ~40 MB more while "
              "it parses, and the 100,000 planned datums ~47 MB more (sharing those entries). The plan (~50 MB "
              "of JSON) is written 1,000 datums at a time (scheduler/store.py dump_in_parts): made whole, it "
              "added ~115 MB at the peak")
PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or sys.executable
BATCH = 1_000  # datums per message in row 16: HERD_BATCH_SECONDS (1 s) over datums of <= 1 ms
AHEAD = 3  # scheduler/batching.py AHEAD_PER_WORKER: batches in flight per worker


# Row 11 ------------------------------------------------------------------------------------------
def herd_many_files(root: Path, n: int) -> float:
    """Seconds of the whole settle of one datum writing n x 3 KB files; checks the output commit.
    The store is `root`/store, the worker's scratch `root`/scratch (where user code writes)."""
    pfs = Pfs(LocalObjectStore(root / "store"))
    pfs.create_repo("one")
    pfs.put_file("one", "master", "/seed", b"seed\n")
    Pipelines(pfs).create({
        "pipeline": {"name": "writer"},
        "transform": {"cmd": [PYTHON, "-c", WRITE_SCRIPT, "/pfs/out", str(n)]},
        "input": {"pfs": {"repo": "one", "glob": "/"}},
    })
    t0 = time.perf_counter()
    # The local runtime, not Docker's if one runs; the scratch beside the store, on the same tmpfs.
    settle(pfs, SchedulerSettings(broker=None), WorkerSettings(runtime="local", scratch=str(root / "scratch")))
    took = time.perf_counter() - t0
    head = pfs.inspect_commit("writer", "master")
    files = pfs.read_manifest(head).files
    if head.finished is None or len(files) != n:
        raise RuntimeError(f"writer's output commit holds {len(files)} files, not {n}")
    return took


def bare_many_files(folder: Path, n: int) -> float:
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    subprocess.run([PYTHON, "-c", WRITE_SCRIPT, str(folder), str(n)], check=True)
    took = time.perf_counter() - t0
    if len(os.listdir(folder)) != n:
        raise RuntimeError(f"the bare script wrote {len(os.listdir(folder))} files, not {n}")
    return took


def many_files_row(n: int, rounds: int, smoke: bool) -> dict[str, object]:
    from figures import planned_row

    from tmpfs import fast_folder

    herd, bare = [], []
    with fast_folder("herd-bench-") as tmp:  # bench/tmpfs.py: the disk's noise is larger than the work
        for r in range(rounds):
            herd.append(herd_many_files(tmp / f"herd{r}", n))
            bare.append(bare_many_files(tmp / f"bare{r}", n))
    med = statistics.median
    return planned_row(FIGURES[0], med(herd), med(bare),
                       f"{'N=' + str(n) + '; ' if smoke else ''}embedded settle, local store and scratch on tmpfs, "
                       "local runtime; anchor: "
                       f"the same python script bare; medians of {rounds} interleaved "
                       f"(herd {min(herd):.2f}-{max(herd):.2f} s); {WHY_MANY_FILES}")


# Rows 16 and 17 ----------------------------------------------------------------------------------
def vm_kib(pid: int, field: str) -> int:
    """A VmHWM / VmRSS line of /proc/<pid>/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def job_of(pfs: Pfs, pipeline: str) -> str | None:
    jobs = JobQueries(pfs).list(pipeline)
    return jobs[0][0].id if jobs else None


def service_memory(pfs: Pfs, env: dict[str, str], procs: Processes) -> tuple[float, float, float, int, int]:
    """(peak MiB before the pipeline, peak MiB after the job's batches went out and ~4 passes more,
    seconds from create-pipeline to its first marks, messages sent, datums sent) of `herd scheduler`."""
    from distributed import HERD, wait_until

    from scheduler.broker import Broker

    proc = procs.start("scheduler", [*HERD, "scheduler"], {**env, "HERD_RECONCILE_INTERVAL": "0.5"})
    broker = Broker(env["HERD_BROKER"])
    try:
        wait_until(lambda: "scheduler started" in procs.log("scheduler"), 60, "herd scheduler to start")
        time.sleep(1.5)  # a few idle passes
        idle = vm_kib(proc.pid, "VmHWM")
        t0 = time.monotonic()
        Pipelines(pfs).create(fan_spec("memory", None))

        def sent() -> bool:
            job = job_of(pfs, "memory")
            return job is not None and bool(broker.sent(job))

        wait_until(sent, 300, "herd scheduler to send the job's first batches", interval=0.05)
        took = time.monotonic() - t0
        time.sleep(2.0)  # more passes over the planned job: each re-reads it
        if proc.poll() is not None:
            raise RuntimeError(f"herd scheduler exited {proc.returncode}: {procs.log('scheduler')[-2000:]}")
        peak = vm_kib(proc.pid, "VmHWM")
        job = job_of(pfs, "memory")
        assert job is not None
        marks = broker.sent(job)
        datums = sum(len(m.datums) for m in marks.values())
    finally:
        procs.stop(proc)
        broker.close()
    Pipelines(pfs).set_stopped("memory", True)
    return idle / 1024, peak / 1024, took, len(marks), datums


def fan_spec(name: str, workers: int | None) -> dict[str, object]:
    spec: dict[str, object] = {
        "pipeline": {"name": name},
        "transform": {"cmd": ["sh", "-c", "cp $many /pfs/out/"]},
        "input": {"pfs": {"repo": "many", "glob": "/*"}},
    }
    if workers is not None:
        spec["parallelism_spec"] = {"constant": workers}
    return spec


def purge(client: redis.Redis, queue: str) -> None:
    client.delete(queue)  # kombu's Redis transport: a queue is a Redis list of that name


@dataclass(frozen=True)
class Enqueued:
    """Row 16's medians and what the last round's pass sent."""

    seconds: float  # the whole reconcile pass
    spread: tuple[float, float]  # its fastest and slowest round
    sending: float  # the part spent in CeleryDispatcher.submit
    rate: float  # raw send_task messages per second
    messages: int
    datums: int
    workers: int


def enqueue_rounds(pfs: Pfs, url: str, n: int, rounds: int, anchor_n: int) -> Enqueued:
    """Row 16, rounds of (raw send_task rate, one reconcile pass over a new n-datum job)."""
    from scheduler.broker import Broker
    from scheduler.dispatch_celery import CeleryDispatcher
    from scheduler.loop import Scheduler
    from scheduler.messages import DatumBatch

    workers = -(-n // (AHEAD * BATCH))  # the fewest workers whose room covers the job in one pass
    settings = SchedulerSettings(broker=url)
    broker = Broker(url, settings.queue)
    dispatcher = CeleryDispatcher(broker, settings)
    scheduler = Scheduler(pfs, dispatcher, parallelism=workers, batch_size=BATCH)
    sending = [0.0]
    submit = dispatcher.submit

    def timed_submit(batch: DatumBatch) -> None:
        t0 = time.perf_counter()
        submit(batch)
        sending[0] += time.perf_counter() - t0

    dispatcher.submit = timed_submit  # type: ignore[method-assign]
    passes, sends, rates = [], [], []
    messages = datums = 0
    try:
        for r in range(rounds):
            purge(broker.client, settings.queue)
            t0 = time.perf_counter()
            for i in range(anchor_n):
                dispatcher.app.send_task("herd.bench_noop", args=[i], queue=settings.queue)
            rates.append(anchor_n / (time.perf_counter() - t0))
            purge(broker.client, settings.queue)
            name = f"enqueue{r}"
            Pipelines(pfs).create(fan_spec(name, workers))
            sending[0] = 0.0
            t0 = time.perf_counter()
            scheduler.tick()
            passes.append(time.perf_counter() - t0)
            sends.append(sending[0])
            job = job_of(pfs, name)
            assert job is not None
            marks = broker.sent(job)
            messages, datums = len(marks), sum(len(m.datums) for m in marks.values())
            queued = dispatcher.queue_size()
            if datums != n or queued != messages:
                raise RuntimeError(f"one pass sent {datums} of {n} datums in {messages} marks; the queue holds {queued}")
            Pipelines(pfs).set_stopped(name, True)  # the next rounds' passes skip it
            purge(broker.client, settings.queue)
    finally:
        dispatcher.close()
        broker.close()
    med = statistics.median
    return Enqueued(med(passes), (min(passes), max(passes)), med(sends), med(rates), messages, datums, workers)


def queue_rows(n: int, rounds: int, anchor_n: int, smoke: bool) -> list[dict[str, object]]:
    """Rows 16 and 17 over one redis-server, one local store holding n one-line files."""
    from distributed import Processes, start_services
    from figures import planned_row, skipped_rows

    if shutil.which("redis-server") is None:
        return skipped_rows(FIGURES[1:], "skipped: no redis-server on PATH")
    work = Path(tempfile.mkdtemp(prefix="herd-bench-"))
    (work / "logs").mkdir()
    procs = Processes(work / "logs")
    try:
        env, pfs = start_services(work, "file", procs)
        t0 = time.perf_counter()
        pfs.create_repo("many")
        pfs.put_files("many", "master", [(f"/f{i:06d}", f"line {i}\n".encode()) for i in range(n)])
        loaded = time.perf_counter() - t0
        idle, peak, first, sent_messages, sent_datums = service_memory(pfs, env, procs)
        enq = enqueue_rounds(pfs, env["HERD_BROKER"], n, rounds, anchor_n)
    except BaseException:
        procs.stop_all()
        print(f"failed; logs kept in {work / 'logs'}", file=sys.stderr)
        raise
    procs.stop_all()
    shutil.rmtree(work, ignore_errors=True)
    size = f"N={n:,}; " if smoke else ""
    return [
        planned_row(FIGURES[1], enq.seconds, n / enq.rate,
                    f"{size}one reconcile pass: create job, plan, send; {enq.datums:,} datums in "
                    f"{enq.messages} messages of {BATCH:,} ({enq.workers} workers x {AHEAD} ahead), "
                    f"sending {enq.sending:.2f} s of it; anchor: raw send_task {enq.rate:,.0f}/s "
                    f"({anchor_n:,} sent) scaled to N; medians of {rounds} interleaved (pass {enq.spread[0]:.2f}-"
                    f"{enq.spread[1]:.2f} s); input put in {loaded:.0f} s"),
        planned_row(FIGURES[2], peak, None,
                    f"{size}herd scheduler VmHWM (MiB); {idle:.0f} before the pipeline; job planned and first "
                    f"batches sent {first:.1f} s after create-pipeline; sent {sent_datums} datums in "
                    f"{sent_messages} messages (no measured times: 1 per message, 3 per worker ahead); {WHY_MEMORY}"),
    ]


def figures(smoke: bool) -> list[dict[str, object]]:
    """Rows 11, 16 and 17 of issue 15's table."""
    files, datums, rounds, anchor_n = (200, 2_000, 1, 300) if smoke else (6_000, 100_000, 3, 3_000)
    return [many_files_row(files, rounds, smoke), *queue_rows(datums, rounds, anchor_n, smoke)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes (200 files, 2,000 datums, 1 round)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, smoke 1)")
    parser.add_argument("--files", type=int, help="3 KB files the datum of row 11 writes (default 6,000)")
    parser.add_argument("--datums", type=int, help="datums of the job of rows 16 and 17 (default 100,000)")
    parser.add_argument("--anchor-messages", type=int, help="raw send_task messages per round (default 3,000)")
    args = parser.parse_args()
    from figures import format_table

    files, datums, rounds, anchor_n = (200, 2_000, 1, 300) if args.smoke else (6_000, 100_000, 3, 3_000)
    files, datums = args.files or files, args.datums or datums
    rounds, anchor_n = args.rounds or rounds, args.anchor_messages or anchor_n
    rows = [many_files_row(files, rounds, args.smoke), *queue_rows(datums, rounds, anchor_n, args.smoke)]
    print(format_table(rows, smoke=args.smoke, note_width=400))


if __name__ == "__main__":
    main()
