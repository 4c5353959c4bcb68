"""Distributed herd on this machine: throughput over 1 and 2 workers, Docker runtime overhead
against bare `docker exec` / `docker run`, and the latency of a 1-datum change.

    .venv/bin/python bench/distributed.py [--datums 2000] [--storage file|s3] [--latency-rounds 5]

Real parts: a redis-server (append-only), `herd scheduler` and `herd worker` processes, the
Docker engine at DOCKER_HOST with the busybox test image (built FROM scratch if missing), and
storage in a local folder (`file`, default: measures herd, Celery and Docker) or in moto's S3
server (`s3`: moto answers in ~10-20 ms a request, so it measures moto more than herd).
Everything started here is stopped at the end. `figures(smoke)` gives bench/run.py rows 12, 13
and 15 of issue 15's table (local store, on tmpfs as bench/tmpfs.py says why, and row 12's job
once more on the disk for its note); without a Docker engine they say "skipped: no Docker
engine" (the engine is found at DOCKER_HOST, the default socket or /run/herd-docker.sock,
never started here). Run alone, this script works in the default temp folder (TMPDIR).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # bench/cpu.py, after herd's packages

from cpu import Process, cpu_by_group, cpu_spent, machine_ceiling_note  # noqa: E402
from tmpfs import create_cost, fast_folder  # noqa: E402
from scheduler.job_records import JobState  # noqa: E402
from scheduler.pipelines import Pipelines  # noqa: E402
from scheduler.queries import JobQueries  # noqa: E402
from storage.factory import open_object_store  # noqa: E402
from storage.repos import Pfs  # noqa: E402
from storage.settings import StorageSettings  # noqa: E402

IMAGE = "herd-test-busybox:latest"
HERD = [sys.executable, "-c", "from scheduler.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - still starting
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class Processes:
    """Child processes in their own sessions, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            self.stop(proc)


def start_services(work: Path, storage: str, procs: Processes) -> tuple[dict[str, str], Pfs]:
    """redis-server (and moto for s3), then the environment every herd process gets."""
    redis_port = free_port()
    procs.start("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "yes", "--dir", str(work)], dict(os.environ))
    env = {
        **os.environ, "HERD_BROKER": f"redis://127.0.0.1:{redis_port}/0", "HERD_RUNTIME": "docker",
        "HERD_USER_NETWORK": "false", "HERD_SCRATCH": str(work / "scratch"), "PYTHONPATH": str(ROOT),
    }
    if storage == "s3":
        port = free_port()
        procs.start("moto", [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                    dict(os.environ))
        env.update({"HERD_STORAGE": "s3://herd-bench/herd", "HERD_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                    "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
        os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True, 30, "moto")
    else:
        env["HERD_STORAGE"] = f"file://{work / 'store'}"
    import redis

    wait_until(lambda: redis.Redis(port=redis_port).ping(), 30, "redis-server")
    settings = StorageSettings(storage=env["HERD_STORAGE"], s3_endpoint_url=env.get("HERD_S3_ENDPOINT_URL"))
    return env, Pfs(open_object_store(settings))


def run_job(pfs: Pfs, name: str, timeout: float, broker: str, script: str = "cp $many /pfs/out/",
            repo: str = "many") -> tuple[float, float]:
    """Create a pipeline running `script` per file of `repo` and wake the scheduler at `broker`,
    as `herd create-pipeline` does; (wall seconds to its output, job's own seconds)."""
    from scheduler.broker import Broker

    started = time.monotonic()
    Pipelines(pfs).create({
        "pipeline": {"name": name},
        "transform": {"image": IMAGE, "cmd": ["sh", "-c", script]},
        "input": {"pfs": {"repo": repo, "glob": "/*"}},
    })
    waker = Broker(broker)
    try:
        waker.wake()
    finally:
        waker.close()
    jobs = JobQueries(pfs)

    def done() -> bool:
        found = jobs.list(name)
        return bool(found) and found[0][1].state.terminal

    wait_until(done, timeout, f"pipeline {name}'s job", interval=0.05)
    wall = time.monotonic() - started
    status = jobs.list(name)[0][1]
    if status.state != JobState.JOB_SUCCESS:
        raise RuntimeError(f"job of {name} ended {status.state.value}: {status.reason}")
    return wall, (status.finished - status.started).total_seconds()


def job_timeline(pfs: Pfs, name: str) -> dict[str, float]:
    """Where a finished job's time went, from its stored datum results (seconds): before the
    first datum started (`lead`), after the last ended (`tail`), how far apart the workers'
    last results were (`spread`), and a datum's mean attempt (claim to result not included)."""
    jobs = JobQueries(pfs)
    info, status = jobs.list(name)[0]
    results = [result for _, result in jobs.datums(info.id)[1] if result is not None]
    start, end = status.started.timestamp(), status.finished.timestamp()
    ends: dict[str, float] = {}
    for result in results:
        ends[result.worker] = max(ends.get(result.worker, 0.0), result.finished.timestamp())
    return {
        "job": end - start,
        "lead": min(r.started.timestamp() for r in results) - start,
        "tail": end - max(ends.values()),
        "spread": max(ends.values()) - min(ends.values()),
        "attempt": statistics.mean((r.finished - r.started).total_seconds() for r in results),
    }


def two_workers_note(one: dict[str, float], two: dict[str, float]) -> str:
    """Row 13's floor: the job's serial parts (before the first datum, after the last) do not
    shrink with a second worker; with them as measured and the datums split perfectly, the
    ratio could reach at most `bound`."""
    fixed1, fixed2 = one["lead"] + one["tail"], two["lead"] + two["tail"]
    bound = one["job"] / (fixed2 + (one["job"] - fixed1) / 2)
    return (f"2 workers: the first datum started {two['lead']:.2f} s into the job (its plan, the first sends, "
            f"the new pipeline's container on each worker), the job ended {two['tail']:.2f} s after the last "
            f"result, the workers' last results {two['spread']:.2f} s apart; those serial parts alone bound the "
            f"ratio at {bound:.2f}x; a datum's attempt took {one['attempt'] * 1000:.1f} ms with 1 worker, "
            f"{two['attempt'] * 1000:.1f} ms with 2")


def change_latency(
    pfs: Pfs, pipeline: str, rounds: int, repo: str = "many", broker: str | None = None,
) -> list[dict[str, float]]:
    """put-file of one new file → the pipeline's output commit from it finished, in seconds,
    split at the job's creation and its datum's result (the records' timestamps). With `broker`
    the put-file wakes the scheduler as the CLI's and the server's do (Broker.wake)."""
    from scheduler.broker import Broker
    from scheduler.store import PpsStore

    records = PpsStore(pfs.objects)
    waker = Broker(broker) if broker else None
    out = []
    for i in range(rounds):
        started = time.monotonic()
        commit = pfs.put_file(repo, "master", f"/new-{i}", f"new {i}\n".encode())
        if waker is not None:
            waker.wake()

        def landed() -> bool:
            head = pfs.inspect_commit(pipeline, "master")
            return head.finished is not None and any(p.id == commit.id for p in head.provenance)

        wait_until(landed, 60, "the output of a 1-datum change", interval=0.01)
        total = time.monotonic() - started
        output = pfs.inspect_commit(pipeline, "master")
        job = records.get_job(output.id)
        (result,) = [r for r in records.iter_results(job.id)]
        assert commit.finished and output.finished and result.finished and result.started
        out.append({
            "total": total,
            "notice": (job.created - commit.finished).total_seconds(),
            "run": (result.finished - job.created).total_seconds(),
            "datum": (result.finished - result.started).total_seconds(),
            "finish": (output.finished - result.finished).total_seconds(),
        })
        time.sleep(0.3)  # changes apart, not one right after a job ended
    if waker is not None:
        waker.close()
    return out


def docker_overhead(n: int) -> dict[str, float]:
    """Median ms per datum: herd's DockerRuntime session vs bare exec_run vs bare containers.run."""
    import docker

    from worker.docker_runtime import DockerRuntime
    from worker.runtime import RunRequest, UserCode

    client = docker.from_env()
    cmd = "cp /pfs/in/x /pfs/out/x"
    with tempfile.TemporaryDirectory() as folder:
        pfs = Path(folder)
        (pfs / "in").mkdir()
        (pfs / "in" / "x").write_text("one line\n")
        (pfs / "out").mkdir()
        session = DockerRuntime().open("bench", UserCode(image=IMAGE, cmd=("sh", "-c", cmd), network=False))
        request = RunRequest(pfs_dir=pfs, env={"PACH_JOB_ID": "bench"}, timeout=30)
        warm = client.containers.run(IMAGE, ["sleep", "3600"], detach=True, network_mode="none", remove=True)
        warm.exec_run(["mkdir", "-p", "/pfs/in", "/pfs/out"])
        warm.exec_run(["sh", "-c", "echo one line > /pfs/in/x"])

        def herd_run() -> None:
            for child in (pfs / "out").iterdir():
                child.unlink()
            result = session.run(request)
            assert result.exit_code == 0, result.stderr

        cases: dict[str, tuple[Callable[[], object], int]] = {
            "herd DockerRuntime (warm container, per datum)": (herd_run, n),
            "bare docker exec (SDK exec_run, warm container)": (lambda: warm.exec_run(["sh", "-c", cmd]), max(5, n // 4)),
            "bare docker run (SDK containers.run, --rm)": (
                lambda: client.containers.run(IMAGE, ["sh", "-c", "true"], network_mode="none", remove=True),
                max(3, n // 20),
            ),
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        try:
            for fn, _ in cases.values():
                fn()  # warm
            for _ in range(3):  # interleaved rounds: machine noise hits each alike
                for name, (fn, count) in cases.items():
                    t0 = time.perf_counter()
                    for _ in range(count):
                        fn()
                    samples[name].append((time.perf_counter() - t0) / count * 1000)
        finally:
            session.close()
            warm.kill()
            client.close()
    return {name: statistics.median(values) for name, values in samples.items()}


def start_herd(work: Path, host: str, procs: Processes, repos: dict[str, int]) -> tuple[dict[str, str], Pfs]:
    """redis-server, the store, HERD_SCRATCH and Redis's log in `work`; `repos` of one-line files;
    `herd scheduler` and worker w1 (concurrency 1) ready."""
    env, pfs = start_services(work, "file", procs)
    env["DOCKER_HOST"] = host
    for repo, count in repos.items():
        pfs.create_repo(repo)
        pfs.put_files(repo, "master", [(f"/f{i:05d}", f"line {i}\n".encode()) for i in range(count)])
    procs.start("scheduler", [*HERD, "scheduler"], env)
    procs.start("w1", [*HERD, "worker", "--concurrency", "1"], {**env, "HERD_WORKER_ID": "w1"})
    wait_ready(procs, ["w1"])
    return env, pfs


def trivial_on_disk(host: str, n: int, logs: Path) -> tuple[float, float]:
    """Row 12's job once more with herd's files on the default temp folder (this machine's disk),
    its processes' logs in `logs`: (datums/s, the median seconds of a file create there just before)."""
    logs.mkdir()
    procs = Processes(logs)
    try:
        with tempfile.TemporaryDirectory(prefix="herd-bench-disk-") as folder:
            env, pfs = start_herd(Path(folder), host, procs, {"many": n})
            create = create_cost(Path(folder))
            wall, _ = run_job(pfs, "copy1", timeout=1800, broker=env["HERD_BROKER"])
            procs.stop_all()
    finally:
        procs.stop_all()
    return n / wall, create


def part_of_herd(process: Process) -> str | None:
    """Which part of the distributed herd started here a process is (row 12's CPU split)."""
    if process.name in ("dockerd", "containerd") or process.name.startswith("containerd-shim"):
        return "the Docker engine"
    if "docker" in process.cgroup:
        return "the container"  # its runner's and stager's shells, and the forks they reaped
    if process.argv[:3] == tuple(HERD) and process.argv[3:4] in (("worker",), ("scheduler",)):
        return f"the {process.argv[3]}"
    return "Redis" if process.name == "redis-server" else None


def cpu_split_note(parts: dict[str, float], count: int) -> str:
    """The CPU a datum of each part, most first (ms)."""
    ranked = sorted(parts.items(), key=lambda item: -item[1])
    return "of it " + ", ".join(f"{name} {seconds / count * 1000:.2f} ms" for name, seconds in ranked)


def disk_note(fast: Path, fast_create: float, disk: tuple[float, float]) -> str:
    """Row 12's figure is from `fast` (tmpfs); what the same job made on the disk, and why it differs."""
    rate, create = disk
    return (f"store, scratch and Redis's log in {fast.parent} (bench/tmpfs.py), where a file create took "
            f"{fast_create * 1e6:.0f} us; on this machine's disk ({tempfile.gettempdir()}) a create took "
            f"{create * 1e6:.0f} us just before the same job there made {rate:.0f} datums/s: a datum creates 3 "
            f"files on a local store (its attempt's folder, its claim, its result), and ext4 without a "
            f"journal makes each new file walk past the inodes freed in the last minutes")


def wait_ready(procs: Processes, names: list[str]) -> None:
    wait_until(lambda: all(" ready." in procs.log(n) for n in names), 90, "workers to be ready", interval=0.1)


# Where a worker's time goes (py-spy over `herd worker --concurrency 1`, 4,000 trivial datums,
# store and scratch on tmpfs, Docker runtime, 2026-12-04), and why a second worker gains less
# than Celery alone.
WHY_WORKER = ("the worker's time a datum (py-spy at 200 Hz, 2026-12-04, store on tmpfs, 186 datums/s): it was "
              "busy 39% of the job's time and waited the rest (on the warm container's round trip, row 14); of its "
              "busy samples, the runtime's streams (send the datum, read the answer, check the staged inputs) "
              "~42%, the attempt claim and the result (create-only records) ~25%, reading the outputs' archive "
              "in memory (tarfile) ~11%; on the disk the records were ~36% (py-spy the same day: the inode "
              "allocator, above); so fewer records a datum would cut little of the 5 ms: what is left is to "
              "overlap the next datum's claim and send with the container's run of this one")
WHY_CONTAINER = ("the container's share is its processes, counted (docker_runner.py): a datum forks the runner's "
                 "watcher and user code's subshell, user code's own sh -c cp (the anchor's work), a tar of its "
                 "outputs, an rm of /pfs/out, and the stager's dd of the input and rm; timed 500 times each in a warm "
                 "busybox container (2026-12-05): a fork that execs nothing (subshell, rm, dd) 0.16 ms, tar 0.72 ms, "
                 "cat 0.54 ms (so outputs sent by cat instead of tar would save nothing), sh -c cp 0.84 ms")
WHO_RUNS = ("the scheduler, the worker, Redis, the Docker engine and the container, over create-pipeline to "
            "output commit")
WHY_TWO_WORKERS = ("that overhead is CPU (each worker's Python, dockerd's relay of the streams, the forks in the "
                   "container) which two workers share on 2 cores with the scheduler, Redis and the engine, while "
                   "a raw Celery task of 20 ms uses almost none")
FIGURES = (
    "distributed, 1 worker, trivial datums (local store, Docker)",
    "distributed, 2 workers vs 1, 20 ms datums",
    "1-datum change, put-file to output commit, distributed",
)


def figures(smoke: bool) -> list[dict[str, object]]:
    """Rows 12, 13 and 15 of issue 15's table for bench/run.py: redis-server, `herd scheduler`
    and `herd worker` processes started here, the Docker engine found (never started) here."""
    from figures import planned_row, skipped_rows
    from runtime_docker import NoDockerEngine, engine, ensure_image

    def skipped(why: str) -> list[dict[str, object]]:
        return skipped_rows(FIGURES, why)

    if shutil.which("redis-server") is None:
        return skipped("skipped: no redis-server on PATH")
    try:
        client, host = engine()
    except NoDockerEngine as exc:
        return skipped(str(exc))
    try:
        ensure_image(client, Path("/bin/busybox"))
    finally:
        client.close()
    n_trivial, n_slow, rounds = (20, 20, 1) if smoke else (2000, 500, 5)
    logs = Path(tempfile.mkdtemp(prefix="herd-bench-logs-"))
    procs = Processes(logs)
    try:
        with fast_folder("herd-bench-") as work:  # bench/tmpfs.py: this disk's creates, not herd's
            env, pfs = start_herd(work, host, procs, {"many": n_trivial, "slow": n_slow, "few": 1})
            fast, fast_create = work, create_cost(work)
            with cpu_spent() as spent1, cpu_by_group(part_of_herd) as parts1:
                wall1, job1 = run_job(pfs, "copy1", timeout=1800, broker=env["HERD_BROKER"])
            slow = "sleep 0.02; cp $slow /pfs/out/"
            _, slow1 = run_job(pfs, "slow1", timeout=1800, broker=env["HERD_BROKER"], script=slow, repo="slow")
            timeline1 = job_timeline(pfs, "slow1")
            procs.start("w2", [*HERD, "worker", "--concurrency", "1"], {**env, "HERD_WORKER_ID": "w2"})
            wait_ready(procs, ["w1", "w2"])
            _, slow2 = run_job(pfs, "slow2", timeout=1800, broker=env["HERD_BROKER"], script=slow, repo="slow")
            timeline2 = job_timeline(pfs, "slow2")
            run_job(pfs, "lat", timeout=300, broker=env["HERD_BROKER"], script="cp $few /pfs/out/", repo="few")
            latency = change_latency(pfs, "lat", rounds, repo="few", broker=env["HERD_BROKER"])
            procs.stop_all()
        disk = trivial_on_disk(host, n_trivial, logs / "disk")
    except BaseException:
        procs.stop_all()
        print(f"failed; logs kept in {logs}", file=sys.stderr)
        raise
    procs.stop_all()
    shutil.rmtree(logs, ignore_errors=True)
    med = {key: statistics.median(r[key] for r in latency) for key in latency[0]}
    size = "smoke sizes; " if smoke else ""
    return [
        planned_row(FIGURES[0], n_trivial / wall1, None,
                    f"{size}{n_trivial} datums, create-pipeline to output commit {wall1:.1f} s (job alone "
                    f"{n_trivial / job1:.0f}/s); anchor: raw Celery round trip 460-650/s, performance.md; "
                    f"{machine_ceiling_note(spent1, n_trivial, WHO_RUNS)}, {cpu_split_note(parts1, n_trivial)} "
                    f"(/proc/<pid>/stat, a process's reaped children in its own); {WHY_CONTAINER}; "
                    f"{disk_note(fast, fast_create, disk)}; "
                    f"{WHY_WORKER}"),
        planned_row(FIGURES[1], slow1 / slow2, None,
                    f"{size}{n_slow} datums of sleep 0.02, job time 1 worker {slow1:.1f} s / 2 workers {slow2:.1f} s "
                    f"({slow1 / n_slow * 1000 - 20:.1f} ms a datum besides its 20 ms of sleep); anchor: raw Celery "
                    f"c2/c1 = 1.86x, performance.md; {WHY_TWO_WORKERS}; {two_workers_note(timeline1, timeline2)}"),
        planned_row(FIGURES[2], med["total"], None,
                    f"{size}median of {rounds}; the put-file wakes the scheduler as the CLI's does: commit to job "
                    f"{med['notice']:.2f} s, job to result {med['run']:.2f} s, result to output commit "
                    f"{med['finish']:.2f} s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datums", type=int, default=2000, help="one-line files, one datum each")
    parser.add_argument("--storage", choices=["file", "s3"], default="file", help="local folder or moto's S3 server")
    parser.add_argument("--latency-rounds", type=int, default=5)
    parser.add_argument("--docker-n", type=int, default=100, help="datums per DockerRuntime measurement round")
    parser.add_argument("--keep-logs", action="store_true", help="keep the services' logs (printed path)")
    args = parser.parse_args()
    import docker
    from runtime_docker import ensure_image  # bench/ is this script's folder: the same image build

    ensure_image(docker.from_env(), Path("/bin/busybox"))
    work = Path(tempfile.mkdtemp(prefix="herd-bench-"))
    (work / "logs").mkdir()
    procs = Processes(work / "logs")
    try:
        env, pfs = start_services(work, args.storage, procs)
        print(f"storage {env['HERD_STORAGE']}  broker {env['HERD_BROKER']}  {os.cpu_count()} cores")
        pfs.create_repo("many")
        pfs.put_files("many", "master", [(f"/f{i:05d}", f"line {i}\n".encode()) for i in range(args.datums)])
        procs.start("scheduler", [*HERD, "scheduler"], env)
        workers: list[subprocess.Popen[bytes]] = []
        for count in (1, 2):
            while len(workers) < count:
                name = f"w{len(workers) + 1}"
                workers.append(procs.start(name, [*HERD, "worker", "--concurrency", "1"], {**env, "HERD_WORKER_ID": name}))
            wait_ready(procs, [f"w{i + 1}" for i in range(count)])
            wall, job = run_job(pfs, f"copy{count}", timeout=1800, broker=env["HERD_BROKER"])
            print(f"throughput, {count} worker process(es): {args.datums / wall:7.1f} datums/s "
                  f"(create-pipeline to output commit {wall:.1f}s; job start to finish {job:.1f}s = "
                  f"{args.datums / job:.1f} datums/s)")
        rounds = change_latency(pfs, "copy2", args.latency_rounds, broker=env["HERD_BROKER"])
        med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        totals = [r["total"] for r in rounds]
        print(f"1-datum change, put-file to output commit finished: median {med['total']:.2f}s "
              f"(min {min(totals):.2f}s, max {max(totals):.2f}s, {len(rounds)} rounds; reconcile interval "
              f"{os.environ.get('HERD_RECONCILE_INTERVAL', '1.0')}s)\n"
              f"  medians: commit to job created {med['notice']:.2f}s, job created to datum result "
              f"{med['run']:.2f}s (datum itself {med['datum']:.3f}s), result to output commit {med['finish']:.2f}s")
        for worker in workers:
            procs.stop(worker)
        overhead = docker_overhead(args.docker_n)
        base = overhead["bare docker exec (SDK exec_run, warm container)"]
        print("docker per-datum cost (median of 3 interleaved rounds):")
        for name, ms in overhead.items():
            print(f"  {name:<50} {ms:8.1f} ms  x{ms / base:5.2f} of a bare exec")
    except BaseException:
        procs.stop_all()
        print(f"failed; logs kept in {work / 'logs'}", file=sys.stderr)
        raise
    procs.stop_all()
    if args.keep_logs:
        print(f"logs in {work / 'logs'}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
