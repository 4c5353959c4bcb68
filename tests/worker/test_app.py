"""The worker's Celery app: built by `make_app` from settings loaded once, nothing at import, and
an outage gives the batch back to the queue instead of failing it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery

from scheduler.messages import PROCESS_BATCH, DatumBatch
from storage.errors import InvalidArgument
from storage.settings import StorageSettings
from tests.fixtures.redis import RedisFactory
from tests.fixtures.services import free_port, wait_until
from worker.app import make_app
from worker.settings import WorkerSettings
from worker.tasks import MAX_BACKOFF, backoff

ROOT = Path(__file__).resolve().parents[2]
HERD = [sys.executable, "-c", "from scheduler.cli import main; main()"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERD_")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


@pytest.mark.parametrize("env", [
    {},  # HERD_BROKER unset: importing used to raise
    {"HERD_BROKER": "http://not-redis", "HERD_CONCURRENCY": "many", "HERD_STORAGE": "ftp://x"},
])
def test_importing_the_worker_app_reads_no_setting_and_builds_nothing(env: dict[str, str]) -> None:
    # Given an environment without a broker, or with bad values that any read would refuse
    code = (
        "import worker.app, worker.tasks\n"
        "from celery import Celery\n"
        "from celery._state import _apps\n"
        "assert not [v for m in (worker.app, worker.tasks) for v in vars(m).values() if isinstance(v, Celery)]\n"
        "assert not list(_apps), list(_apps)\n"
    )
    # When the worker's modules are imported; Then nothing fails and no Celery app exists yet
    done = subprocess.run([sys.executable, "-c", code], env=_env(**env), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_make_app_builds_the_app_from_the_settings_it_is_given() -> None:
    # Given settings built in code (no environment read)
    settings = WorkerSettings(broker="redis://127.0.0.1:1/2", queue="q7", concurrency=3, visibility_timeout=6)
    # When the app is made
    app = make_app(settings, StorageSettings(storage="memory://make-app"))
    # Then broker, queue, concurrency and redelivery come from them, and the task is registered
    assert app.conf.broker_url == "redis://127.0.0.1:1/2"
    assert app.conf.task_default_queue == "q7" and app.conf.worker_concurrency == 3
    assert app.conf.broker_transport_options["visibility_timeout"] == 6
    assert PROCESS_BATCH in app.tasks
    assert app.tasks[PROCESS_BATCH].max_retries is None  # an outage is waited out, never a burnt try


def test_make_app_refuses_settings_without_a_broker() -> None:
    with pytest.raises(InvalidArgument, match="HERD_BROKER is not set"):
        make_app(WorkerSettings(broker=None), StorageSettings(storage="memory://"))


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff(10_000) == MAX_BACKOFF


@pytest.mark.redis
@pytest.mark.slow
def test_a_storage_outage_gives_the_batch_back_to_the_queue(redis_factory: RedisFactory, tmp_path: Path) -> None:
    # Given a real `herd worker` whose S3 storage does not answer (nothing listens on its port)
    redis = redis_factory()
    closed = f"http://127.0.0.1:{free_port()}"
    env = _env(
        HERD_BROKER=redis.url, HERD_STORAGE="s3://outage/herd", HERD_S3_ENDPOINT_URL=closed, HERD_RUNTIME="local",
        HERD_SCRATCH=str(tmp_path / "scratch"), AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
        AWS_DEFAULT_REGION="us-east-1",
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*HERD, "worker", "--concurrency", "1"], env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    client = Celery("test-client", broker=redis.url)
    try:
        assert wait_until(lambda: " ready." in log.read_text(errors="replace"), timeout=60), log.read_text()
        # When a batch is sent
        client.send_task(PROCESS_BATCH, args=[DatumBatch(job_id="job-out", datums=(0,)).model_dump()], queue="herd")
        # Then the worker gives it back, again and again, each time naming the outage, and stays up
        given_back = lambda: log.read_text(errors="replace").count("batch given back")  # noqa: E731
        assert wait_until(lambda: given_back() >= 2, timeout=90), log.read_text()
        lines = [line for line in log.read_text().splitlines() if "batch given back" in line]
        assert all("job-out" in line and closed in line for line in lines), lines
        assert "WARNING" in lines[0] and "delivery 1" in lines[0] and "delivery 2" in lines[1]
        assert proc.poll() is None
    finally:
        client.close()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
