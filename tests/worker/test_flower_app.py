"""`celery -A worker.app flower`: Celery's own programs find herd's app as `worker.app.app`,
built from HERD_* on first use, without a metrics endpoint (that is `herd worker`'s)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.fixtures.services import free_port

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERD_")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def test_celery_finds_the_app_built_from_the_environment_and_it_serves_no_metrics() -> None:
    # Given the broker and a metrics port in the environment
    port = free_port()
    env = _env(HERD_BROKER="redis://127.0.0.1:1/3", HERD_QUEUE="q9", HERD_STORAGE="memory://flower",
               HERD_METRICS_PORT=str(port))
    # When Celery's way of finding an app (-A worker.app) looks it up
    code = (
        "from celery.app.utils import find_app\n"
        "app = find_app('worker.app')\n"
        "assert app.conf.broker_url == 'redis://127.0.0.1:1/3' and app.conf.task_default_queue == 'q9'\n"
        "assert 'herd.process_batch' in app.tasks\n"
        "import sys; assert 'prometheus_client' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    # Then it is herd's app, from those settings, and nothing listens on the metrics port
    assert done.returncode == 0, done.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # still free


def test_without_a_broker_celery_gets_herds_one_line_error() -> None:
    done = subprocess.run([sys.executable, "-c", "from celery.app.utils import find_app; find_app('worker.app')"],
                          env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "HERD_BROKER is not set" in done.stderr
