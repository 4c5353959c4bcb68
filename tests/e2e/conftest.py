"""The compose stack for end-to-end tests: docker-compose.yml + compose/ci.yml, three workers.

`compose_stack` (module) builds the images offline (compose/build-images.sh: cached on the
engine, so only the first run pays), brings the stack up under a project name of its own
with Redis and the S3 server published on free loopback ports, waits until the three workers
answer Celery's ping, and yields a `Stack`: `.herd(...)` runs the herd CLI of this checkout
on the host against the cluster, `.compose(...)` runs docker-compose on the project. At the end
it always runs `down -v` and removes any user container the workers left; when a test of the
module failed it prints the services' logs first.

Needs a Docker engine (DOCKER_HOST), docker-compose (or `docker compose`), and root for the
first build (debootstrap). Missing pieces skip locally and fail under CI (`missing_service`).
Knobs: HERD_COMPOSE (the compose command, default `docker-compose`, else `docker compose`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.fixtures.services import free_port, missing_service

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 1500.0  # a cold build: debootstrap, apt, wheels (measured ~5 min)
UP_TIMEOUT = 300.0
READY_TIMEOUT = 180.0
WORKERS = 3
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "herd", "AWS_SECRET_ACCESS_KEY": "herd-secret-key"}
BUCKET_URL = "s3://herd/data"  # docker-compose.yml's CLUSTER_STORAGE default


def compose_command() -> list[str]:
    """docker-compose (1.29) if installed, else Compose v2's `docker compose`; HERD_COMPOSE wins."""
    if os.environ.get("HERD_COMPOSE"):
        return shlex.split(os.environ["HERD_COMPOSE"])
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    missing_service("neither docker-compose nor `docker compose` is installed (apt-get install docker-compose)")
    raise AssertionError("unreachable")


def engine_socket() -> str:
    """The host path of the engine's socket, mounted into the workers (DOCKER_HOST=unix://...)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    parts = urlsplit(host)
    if parts.scheme != "unix":
        missing_service(f"the workers mount the engine's socket; DOCKER_HOST={host} is not a unix socket")
    return parts.path


def herd_command() -> list[str]:
    """The herd CLI of this checkout (the venv running pytest)."""
    script = Path(sys.executable).parent / "herd"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from scheduler.cli import main; main()"]


def run(argv: list[str], *, env: dict[str, str] | None = None, timeout: float, check: bool = True,
        input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure the assertion shows its output."""
    proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          input=input.decode() if input else None)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"`{shlex.join(argv)}` exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - still starting; reported at the deadline
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


@dataclass
class Stack:
    """A running compose project and the environment the host's herd CLI needs to reach it."""

    project: str
    compose_cmd: list[str]
    env: dict[str, str]  # for docker-compose: ports, images, socket
    cli_env: dict[str, str]  # for the herd CLI on the host
    redis_port: int
    s3_port: int
    log_dir: Path
    worker_hostnames: set[str] = field(default_factory=set)

    def compose(self, *args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [*self.compose_cmd, "-p", self.project, "-f", "docker-compose.yml", "-f", "compose/ci.yml", *args]
        return run(argv, env=self.env, timeout=timeout, check=check)

    def herd(self, *args: str, timeout: float = 120.0, check: bool = True,
             input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        return run([*herd_command(), *args], env=self.cli_env, timeout=timeout, check=check, input=input)

    def through_server(self, *args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The herd CLI as a user of the cluster runs it: HERD_ADDRESS only, no storage, broker or
        S3 credentials in its environment."""
        env = {k: v for k, v in self.cli_env.items() if not k.startswith(("HERD_", "AWS_"))}
        env["HERD_ADDRESS"] = f"http://{self.env['SERVER_PORT']}"
        return run([*herd_command(), *args], env=env, timeout=timeout, check=check)

    def herd_json_lines(self, *args: str) -> list[dict]:
        out = self.herd(*args, "--json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def container_ids(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).stdout.split()

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "300", timeout=60, check=False).stdout


def _base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_", "CLUSTER_", "MINIO_"))}
    env.pop("COMPOSE_FILE", None)
    env.pop("COMPOSE_PROJECT_NAME", None)
    # The images compose/ci.yml names; build-images.sh builds the same defaults.
    for name in ("HERD_IMAGE", "HERD_BASE_IMAGE", "REDIS_IMAGE", "MOTO_IMAGE", "BUSYBOX_IMAGE", "PROMETHEUS_IMAGE",
                 "HERD_IMAGES_CACHE",
                 "HERD_IMAGES_REBUILD", "HERD_BASE_SUITE", "HERD_DEBIAN_MIRROR", "HERD_PIP"):
        if name in os.environ:
            env[name] = os.environ[name]
    env["HOME"] = os.environ.get("HOME", str(tmp))
    return env


def build_images(env: dict[str, str], log: Path) -> None:
    """compose/build-images.sh (cached: seconds when every image is up to date)."""
    with log.open("w") as out:
        proc = subprocess.run(["bash", "compose/build-images.sh"], cwd=ROOT, env=env, stdout=out,
                              stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT)
    text = log.read_text(errors="replace")
    sys.stderr.write("".join(line + "\n" for line in text.splitlines() if line.startswith("[images")))
    if proc.returncode != 0:
        pytest.fail(f"compose/build-images.sh exited {proc.returncode}:\n{text[-6000:]}")


def workers_answering(stack: Stack) -> int:
    """How many Celery workers answer a ping through the stack's Redis (from the host)."""
    from celery import Celery

    app = Celery("herd-e2e-probe", broker=f"redis://127.0.0.1:{stack.redis_port}/0", set_as_current=False)
    try:
        return len(app.control.ping(timeout=2.0) or [])
    finally:
        app.close()


@pytest.fixture(scope="module")
def compose_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack with three workers, up and answering; always torn down with `down -v`."""
    compose_cmd = compose_command()
    socket = engine_socket()
    probe = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        missing_service(f"no Docker engine answers at {os.environ.get('DOCKER_HOST', 'the default socket')}")
    tmp = tmp_path_factory.mktemp("compose")
    env = _base_env(tmp)
    build_images(env, tmp / "build-images.log")

    redis_port, s3_port, console_port = free_port(), free_port(), free_port()
    env.update({
        "DOCKER_SOCKET": socket,
        "REDIS_PORT": f"127.0.0.1:{redis_port}",
        "MINIO_PORT": f"127.0.0.1:{s3_port}",
        "MINIO_CONSOLE_PORT": f"127.0.0.1:{console_port}",
        # Metrics and the optional monitoring services (test_compose.py's last tests).
        "SCHEDULER_METRICS_PORT": f"127.0.0.1:{free_port()}",
        "PROMETHEUS_PORT": f"127.0.0.1:{free_port()}",
        "FLOWER_PORT": f"127.0.0.1:{free_port()}",
        "SERVER_PORT": f"127.0.0.1:{free_port()}",  # herd serve: the README's HERD_ADDRESS
        # User code needs no network here, and an engine's default bridge may be missing.
        "HERD_USER_NETWORK": "false",
    })
    cli_env = {k: v for k, v in env.items() if k not in ("HERD_USER_NETWORK",)}
    cli_env.update({
        "HERD_STORAGE": BUCKET_URL,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "HERD_BROKER": f"redis://127.0.0.1:{redis_port}/0",
        **CREDENTIALS,
    })
    stack = Stack(f"herd-e2e-{uuid.uuid4().hex[:8]}", compose_cmd, env, cli_env, redis_port, s3_port, tmp)
    failed_before = request.session.testsfailed
    started = time.monotonic()
    try:
        stack.compose("up", "-d", "--scale", f"worker={WORKERS}", timeout=UP_TIMEOUT)
        up = time.monotonic() - started
        wait_for(lambda: workers_answering(stack) >= WORKERS, READY_TIMEOUT, f"{WORKERS} workers to answer a ping")
        sys.stderr.write(f"[e2e] {stack.project}: up in {up:.1f}s, {WORKERS} workers answering after "
                         f"{time.monotonic() - started:.1f}s\n")
        stack.worker_hostnames = {
            run(["docker", "inspect", "-f", "{{.Config.Hostname}}", cid], timeout=30).stdout.strip()
            for cid in stack.container_ids("worker")
        }
        assert len(stack.worker_hostnames) == WORKERS, stack.worker_hostnames
        yield stack
    except BaseException:
        sys.stderr.write(f"\n--- compose logs of {stack.project}\n{stack.logs()}\n")
        raise
    else:
        if request.session.testsfailed > failed_before:
            sys.stderr.write(f"\n--- compose logs of {stack.project}\n{stack.logs()}\n")
    finally:
        _tear_down(stack)


def _tear_down(stack: Stack) -> None:
    """`down -v`, then any user container of this stack's workers that outlived them."""
    stack.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=180, check=False)
    listed = run(["docker", "ps", "-a", "--filter", "label=herd.worker", "--format", '{{.ID}} {{.Label "herd.worker"}}'],
                 timeout=30, check=False).stdout
    leftovers = [
        cid for cid, _, worker in (line.partition(" ") for line in listed.splitlines())
        if worker.rsplit("-", 1)[0] in stack.worker_hostnames
    ]
    if leftovers:
        run(["docker", "rm", "-f", *leftovers], timeout=60, check=False)
