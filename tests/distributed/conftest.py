"""A herd cluster per test: real `herd scheduler` and `herd worker` processes on the session's
redis-server and moto S3 server, user code in the Docker engine's busybox test image.

Each test gets a fresh bucket and its own Redis database (flushed first). Processes start in
their own session (`start_new_session=True`) so a test can SIGKILL one with its pool children
(`os.killpg`); every process left is stopped at teardown. Timings are shortened (leases 3 s,
visibility 4 s, resend 4 s, lock 3 s) so recoveries happen within seconds.

Fault tests share a job whose every output byte is known in advance (`byte_job`, compared with
`check_outputs`), and report a row each to the session's `fault_matrix` (fault, datums, lost,
duplicated, result), printed as one table at the end of the run; a fault test that fails says
so in its row.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from scheduler.job_records import JobInfo, JobStatus
from scheduler.pipelines import Pipelines
from scheduler.queries import JobQueries
from storage.model import Commit, PackSlice
from storage.repos import Pfs
from tests.fixtures.docker import busybox_image, docker_client  # noqa: F401 - fixtures used below
from tests.fixtures.redis import RedisServer
from tests.fixtures.s3 import MotoServer, fresh_bucket
from tests.fixtures.services import wait_until

HERD = [sys.executable, "-c", "from scheduler.cli import main; main()"]
FAST = {
    "HERD_LEASE_SECONDS": "3",
    "HERD_VISIBILITY_TIMEOUT": "4",
    "HERD_RESEND_SECONDS": "4",
    "HERD_LOCK_SECONDS": "3",
    "HERD_RECONCILE_INTERVAL": "0.5",
}
_databases = itertools.count(1)


def fresh_database(redis_server: RedisServer) -> int:
    """A Redis database number of its own for one test, emptied (the server started if needed)."""
    if not redis_server.running:
        redis_server.start()
    database = next(_databases) % 16 or 1
    with redis_server.client(db=database) as conn:
        conn.flushdb()
    return database


def with_image(spec: dict, image: str) -> dict:
    """A copy of a pipeline spec whose transform runs in `image`."""
    return {**spec, "transform": {**spec["transform"], "image": image}}


@dataclass
class Service:
    """A herd process we started, with its log."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group (a worker's pool children too)."""
        _signal_group(self.proc, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL when it does not exit in time."""
        if not self.alive:
            return
        _signal_group(self.proc, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


@dataclass
class Cluster:
    """Storage handles for the test itself, and the processes of one herd install."""

    env: dict[str, str]
    pfs: Pfs
    image: str
    logs: Path
    redis: RedisServer
    services: list[Service] = field(default_factory=list)

    @property
    def pipelines(self) -> Pipelines:
        return Pipelines(self.pfs)

    @property
    def jobs(self) -> JobQueries:
        return JobQueries(self.pfs)

    def start(self, name: str, *args: str, **env: str) -> Service:
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - our own CLI
                [*HERD, *args], env={**self.env, **env}, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        service = Service(name, proc, log)
        self.services.append(service)
        return service

    def worker(self, name: str, concurrency: int = 1) -> Service:
        return self.start(name, "worker", "--concurrency", str(concurrency), HERD_WORKER_ID=name)

    def scheduler(self, name: str = "scheduler") -> Service:
        return self.start(name, "scheduler")

    def wait_ready(self, *workers: Service, timeout: float = 60.0) -> None:
        """Until each worker's Celery consumer is connected (its log says `ready`)."""
        ok = wait_until(lambda: all(" ready." in w.output() for w in workers), timeout=timeout, interval=0.2)
        assert ok, self.diagnose("workers did not become ready")

    def put(self, repo: str, files: dict[str, bytes]) -> Commit:
        """One commit with these files; the scheduler service, not this call, runs the jobs."""
        return self.pfs.put_files(repo, "master", list(files.items()))

    def flush(self, repo: str, commit: Commit, timeout: float = 120.0) -> list[Commit]:
        """Wait for every job downstream of `commit`, as `herd flush-commit --timeout` does."""
        try:
            return self.jobs.flush_commit(repo, commit.id, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - show what the processes said
            raise AssertionError(self.diagnose(f"flush-commit failed: {exc}")) from exc

    def idle(self) -> bool:
        """True when every job the pipelines owe has ended (what the embedded `settle` waits for)."""
        from scheduler.loop import Scheduler
        from scheduler.store import PpsStore

        records, owed = PpsStore(self.pfs.objects), Scheduler(self.pfs, dispatcher=None)  # type: ignore[arg-type]
        for pipeline in records.list_pipelines():
            for job_id, _ in owed.owed_jobs(pipeline):
                status = records.read_status(job_id)
                if status is None or not status.state.terminal:
                    return False
        return True

    def wait_idle(self, timeout: float = 120.0) -> None:
        self.wait_for(self.idle, "every owed job to end", timeout=timeout)

    def last_job(self, pipeline: str) -> tuple[JobInfo, JobStatus]:
        return self.jobs.list(pipeline)[0]

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        assert wait_until(check, timeout=timeout, interval=0.1), self.diagnose(f"timed out waiting for {what}")

    def diagnose(self, message: str) -> str:
        tails = [f"--- {s.name} ({'alive' if s.alive else 'exited'}) ---\n{s.output()[-3000:]}" for s in self.services]
        return "\n".join([message, *tails])

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM every process at once, then SIGKILL what is left after `timeout`."""
        running = [s for s in self.services if s.alive]
        for service in running:
            _signal_group(service.proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for service in running:
            try:
                service.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                service.kill()


def make_cluster(moto: MotoServer, redis_server: RedisServer, image: str, root: Path) -> Cluster:
    """Storage, broker and environment for one herd install (its processes start later)."""
    from storage.s3 import S3ObjectStore

    database = fresh_database(redis_server)
    bucket = fresh_bucket()
    env = {
        **os.environ,
        "HERD_STORAGE": f"s3://{bucket}/herd",
        "HERD_S3_ENDPOINT_URL": moto.url,
        "HERD_BROKER": f"redis://127.0.0.1:{redis_server.port}/{database}",
        "HERD_RUNTIME": "docker",
        "HERD_USER_NETWORK": "false",  # user code here needs none (and this engine may lack a bridge)
        "HERD_SCRATCH": str(root / "scratch"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        **FAST,
    }
    logs = root / "logs"
    logs.mkdir(parents=True)
    pfs = Pfs(S3ObjectStore(bucket, "herd", moto.url))
    return Cluster(env=env, pfs=pfs, image=image, logs=logs, redis=redis_server)


@pytest.fixture
def cluster(
    moto_server: MotoServer, redis_server: RedisServer, busybox_image: str, tmp_path: Path,  # noqa: F811
) -> Iterator[Cluster]:
    """A herd install of its own for one test (the test starts its processes)."""
    herd = make_cluster(moto_server, redis_server, busybox_image, tmp_path)
    yield herd
    herd.stop_all()


@pytest.fixture(scope="module")
def running_cluster(
    moto_server: MotoServer, redis_server: RedisServer, busybox_image: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """One install shared by a module's tests: a scheduler and two single-process workers."""
    herd = make_cluster(moto_server, redis_server, busybox_image, tmp_path_factory.mktemp("cluster"))
    herd.scheduler()
    workers = [herd.worker("w1"), herd.worker("w2")]
    herd.wait_ready(*workers)
    yield herd
    herd.stop_all()


def results_of(pfs: Pfs, job_id: str) -> list[Any]:
    from scheduler.store import PpsStore

    return list(PpsStore(pfs.objects).iter_results(job_id))


def attempts_of(pfs: Pfs, job_id: str, datum_id: str) -> list[Any]:
    """Every attempt of a datum (scheduler.attempts.Attempt: `.number`, `.worker`, ...), oldest first."""
    from scheduler.store import PpsStore

    return PpsStore(pfs.objects).attempts(job_id, datum_id)


def pool_children(service: Service) -> list[int]:
    """Pids of the Celery pool processes of a `herd worker` (children of its main process)."""
    pids: list[int] = []
    for task in Path(f"/proc/{service.proc.pid}/task").glob("*"):
        try:
            pids.extend(int(p) for p in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue  # the thread ended while we looked
    return sorted(set(pids))


# ---- a job whose every output byte is known in advance ------------------------------------

ROT13 = bytes.maketrans(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", b"nopqrstuvwxyzabcdefghijklmNOPQRSTUVWXYZABCDEFGHIJKLM"
)


@dataclass(frozen=True)
class ByteJob:
    """A pipeline of one datum per input file; each datum writes `/<name>` (its file rot13'd by
    `tr`) and appends its name to `/all` (herd merges a path written by several datums by
    concatenation in datum order, so a datum counted twice shows twice)."""

    input_repo: str
    pipeline: str
    names: tuple[str, ...]

    def inputs(self) -> dict[str, bytes]:
        return {f"/{name}": f"{name}: payload {index * 7919} of {self.input_repo}\n".encode()
                for index, name in enumerate(self.names)}

    def expected(self) -> dict[str, bytes]:
        """Every output file's bytes, as an undisturbed run writes them."""
        outputs = {path: data.translate(ROT13) for path, data in self.inputs().items()}
        outputs["/all"] = b"".join(f"{name}\n".encode() for name in sorted(self.names))
        return outputs

    def spec(self, image: str, sleep: float = 0.0) -> dict:
        pause = f"sleep {sleep}; " if sleep else ""
        script = (
            f"{pause}f=${self.input_repo}; n=$(basename $f); "
            "tr a-zA-Z n-za-mN-ZA-M < $f > /pfs/out/$n; echo $n >> /pfs/out/all"
        )
        return {
            "pipeline": {"name": self.pipeline},
            "transform": {"image": image, "cmd": ["sh", "-c", script]},
            "input": {"pfs": {"repo": self.input_repo, "glob": "/*"}},
        }


def byte_job(input_repo: str, pipeline: str, datums: int) -> ByteJob:
    width = len(str(datums - 1))
    return ByteJob(input_repo, pipeline, tuple(f"d{i:0{width}d}" for i in range(datums)))


def output_bytes(pfs: Pfs, commit: Commit) -> dict[str, bytes]:
    """Every file of a finished commit with its bytes (chunks read in parallel, loose or packed,
    each verified against its hash by the blob store)."""
    from concurrent.futures import ThreadPoolExecutor

    from storage.blobs import BlobStore

    blobs = BlobStore(pfs.objects)
    files = pfs.read_manifest(commit).files

    def read(part: tuple[str, PackSlice | None]) -> bytes:
        with blobs.open_chunk(*part) as reader:
            return reader.read()

    with ThreadPoolExecutor(16) as pool:
        chunks = dict(zip(
            (parts := sorted({part for entry in files.values() for part in entry.slices()}, key=str)),
            pool.map(read, parts),
        ))
    return {path: b"".join(chunks[part] for part in entry.slices()) for path, entry in files.items()}


@dataclass(frozen=True)
class OutputCheck:
    """What a fault did to a job's outputs, compared byte for byte with an undisturbed run."""

    datums: int
    lost: int  # datums whose output is missing or wrong, or whose name is missing from /all
    duplicated: int  # extra appearances of datums' names in /all
    extra: tuple[str, ...]  # output paths an undisturbed run does not write
    equal: bool  # every output file's bytes equal the expected ones


def check_outputs(job: ByteJob, actual: dict[str, bytes]) -> OutputCheck:
    expected = job.expected()
    lines = actual.get("/all", b"").decode(errors="replace").splitlines()
    seen = {name: lines.count(name) for name in job.names}
    lost = sum(1 for name in job.names if seen[name] == 0 or actual.get(f"/{name}") != expected[f"/{name}"])
    duplicated = sum(max(0, count - 1) for count in seen.values())
    duplicated += sum(1 for line in lines if line not in seen)
    extra = tuple(sorted(set(actual) - set(expected)))
    return OutputCheck(len(job.names), lost, duplicated, extra, actual == expected)


# ---- the fault matrix summary ------------------------------------------------------------


@dataclass(frozen=True)
class FaultRow:
    fault: str
    datums: int | None  # None: the test failed before it could count
    lost: int | None
    duplicated: int | None
    result: str


@dataclass
class FaultMatrix:
    """Rows added by the fault tests, printed once at the end of the session."""

    rows: list[FaultRow] = field(default_factory=list)

    def add(self, fault: str, datums: int, lost: int, duplicated: int, result: str) -> None:
        self.rows.append(FaultRow(fault, datums, lost, duplicated, result))

    def add_check(self, fault: str, check: OutputCheck, state: str) -> None:
        """A row from an output comparison; result is the job state and whether bytes matched."""
        verdict = "bytes equal" if check.equal else "BYTES DIFFER"
        self.add(fault, check.datums, check.lost, check.duplicated, f"{state}, {verdict}")

    def lines(self) -> list[str]:
        head = ("fault", "datums", "lost", "duplicated", "result")
        def cell(value: int | None) -> str:
            return "?" if value is None else str(value)

        cells = [head, *((r.fault, cell(r.datums), cell(r.lost), cell(r.duplicated), r.result) for r in self.rows)]
        widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" if i in (0, 4) else f"{{:>{w}}}" for i, w in enumerate(widths))
        return [fmt.format(*row).rstrip() for row in cells]


_MATRIX = pytest.StashKey[FaultMatrix]()


def _matrix(config: pytest.Config) -> FaultMatrix:
    if _MATRIX not in config.stash:
        config.stash[_MATRIX] = FaultMatrix()
    return config.stash[_MATRIX]


@pytest.fixture(scope="session")
def fault_matrix(pytestconfig: pytest.Config) -> FaultMatrix:
    """The session's fault matrix: `fault_matrix.add(fault, datums, lost, duplicated, result)`."""
    return _matrix(pytestconfig)


_ROWS_BEFORE = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    item.stash[_ROWS_BEFORE] = len(_matrix(item.config).rows)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A fault test that failed says so in the matrix, whether or not it added its row."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if call.when != "call" or not report.failed or "fault_matrix" not in getattr(item, "fixturenames", ()):
        return
    matrix, before = _matrix(item.config), item.stash.get(_ROWS_BEFORE, None)
    if before is None:
        return
    why = call.excinfo.typename if call.excinfo is not None else "failed"
    if len(matrix.rows) == before:
        matrix.rows.append(FaultRow(item.name, None, None, None, f"TEST FAILED ({why})"))
    for index in range(before, len(matrix.rows)):
        row = matrix.rows[index]
        if not row.result.startswith("TEST FAILED"):
            matrix.rows[index] = replace(row, result=f"{row.result}; TEST FAILED ({why})")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    matrix = config.stash.get(_MATRIX, None)
    if matrix is None or not matrix.rows:
        return
    terminalreporter.section("fault matrix")
    for line in matrix.lines():
        terminalreporter.write_line(line)


def start_byte_job(cluster: Cluster, job: ByteJob, sleep: float = 0.0) -> tuple[str, Commit]:
    """Put the job's inputs, create its pipeline, and wait for the running scheduler to create
    the job; returns (job id, input commit)."""
    cluster.pfs.create_repo(job.input_repo)
    commit = cluster.put(job.input_repo, job.inputs())
    cluster.pipelines.create(job.spec(cluster.image, sleep))
    cluster.wait_for(lambda: bool(cluster.jobs.list(job.pipeline)), f"the job of {job.pipeline} to be created")
    return cluster.last_job(job.pipeline)[0].id, commit


def result_count(cluster: Cluster, job_id: str) -> int:
    from scheduler.store import PpsStore

    return len(PpsStore(cluster.pfs.objects).result_ids(job_id))


def attempts_by_datum(pfs: Pfs, job_id: str, datum_ids: Iterable[str]) -> dict[str, list[Any]]:
    """These datums' attempts (read in parallel), by datum id."""
    from concurrent.futures import ThreadPoolExecutor

    ids = list(datum_ids)
    with ThreadPoolExecutor(16) as pool:
        return dict(zip(ids, pool.map(lambda d: attempts_of(pfs, job_id, d), ids)))


def all_attempts(pfs: Pfs, job_id: str) -> dict[str, list[Any]]:
    """Every planned datum's attempts (read in parallel), by datum id."""
    from scheduler.store import PpsStore

    plan = PpsStore(pfs.objects).read_plan(job_id)
    assert plan is not None, f"job {job_id} has no plan"
    return attempts_by_datum(pfs, job_id, (d.id for d in plan.datums))


def herd_cli(cluster: Cluster, *args: str, timeout: float = 120.0) -> str:
    """Run a `herd` command against the cluster's storage; its stdout (a non-zero exit fails)."""
    done = subprocess.run(  # noqa: S603 - our own CLI
        [*HERD, *args], env=cluster.env, capture_output=True, timeout=timeout, check=False,
    )
    error = done.stderr.decode(errors="replace")
    assert done.returncode == 0, f"herd {' '.join(args)} exited {done.returncode}: {error}"
    return done.stdout.decode()


def results_by_datum(pfs: Pfs, job_id: str) -> dict[str, Any]:
    """Every stored DatumResult of a job (read in parallel), by datum id."""
    from concurrent.futures import ThreadPoolExecutor

    from scheduler.job_records import DatumResult

    keys = list(pfs.objects.list(f"jobs/{job_id}/results/"))
    with ThreadPoolExecutor(16) as pool:
        results = [DatumResult.model_validate_json(body) for body in pool.map(pfs.objects.get, keys)]
    return {r.datum_id: r for r in results}
