"""A herd cluster per test: real `herd scheduler` and `herd worker` processes on the session's
redis-server and moto S3 server, user code in the Docker engine's busybox test image.

Each test gets a fresh bucket and its own Redis database (flushed first). Processes start in
their own session (`start_new_session=True`) so a test can SIGKILL one with its pool children
(`os.killpg`); every process left is stopped at teardown. Timings are shortened (leases 3 s,
visibility 4 s, resend 4 s, lock 3 s) so recoveries happen within seconds.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scheduler.jobs import JobInfo, JobStatus
from scheduler.pipelines import Pipelines
from scheduler.queries import Jobs
from storage.model import Commit
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
    def jobs(self) -> Jobs:
        return Jobs(self.pfs)

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
        from scheduler.store import RecordStore

        records, owed = RecordStore(self.pfs.objects), Scheduler(self.pfs, dispatcher=None)  # type: ignore[arg-type]
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
    from scheduler.store import RecordStore

    return list(RecordStore(pfs.objects).iter_results(job_id))


def attempts_of(pfs: Pfs, job_id: str, datum_id: str) -> list[dict]:
    from scheduler.store import RecordStore

    return RecordStore(pfs.objects).attempts(job_id, datum_id)
