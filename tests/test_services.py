"""The test infrastructure itself: the Redis fixture and the shell scripts behind make/CI."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.fixtures.redis import RedisFactory, RedisServer
from tests.fixtures.services import missing_service

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.redis
def test_redis_server_answers_on_loopback(redis_server: RedisServer) -> None:
    # Given the session's Redis
    # When we ping it through its URL
    with redis_server.client(decode_responses=True) as conn:
        # Then it answers, on the port it reports, with the AOF on and no RDB save points
        assert conn.ping()
        assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
        assert conn.config_get("appendonly") == {"appendonly": "yes"}
        assert conn.config_get("save") == {"save": ""}


@pytest.mark.redis
def test_redis_restart_keeps_aof_persisted_keys(redis_server: RedisServer) -> None:
    # Given a key written to the session's Redis
    key = f"herd-test:{uuid.uuid4().hex}"
    with redis_server.client() as conn:
        conn.set(key, b"survives")
    port = redis_server.port

    # When Redis is shut down and started again
    redis_server.restart()

    # Then it is back on the same port and the key came back from the append-only file
    assert redis_server.port == port
    with redis_server.client() as conn:
        assert conn.get(key) == b"survives"
        conn.delete(key)


@pytest.mark.redis
def test_redis_without_persistence_forgets_on_restart(redis_factory: RedisFactory) -> None:
    # Given a second server with the AOF off (no RDB either)
    server = redis_factory(appendonly=False)
    with server.client() as conn:
        conn.set("k", b"v")

    # When it restarts
    server.restart()

    # Then nothing survived: the persistence setting is what the default server relies on
    with server.client() as conn:
        assert conn.get("k") is None
    server.stop()
    assert not server.running


@pytest.mark.docker
def test_docker_engine_answers() -> None:
    # Given the engine make test / .ci/run made available through DOCKER_HOST
    import docker  # a dependency of herd (pyproject.toml): never a reason to skip
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except docker.errors.DockerException as exc:
        missing_service(f"no Docker engine answers at DOCKER_HOST: {exc}")
    # Then it answers and reports a server version
    try:
        assert client.version()["Version"]
    finally:
        client.close()


@pytest.mark.parametrize(
    "script",
    [".ci/run", "scripts/services.sh", "scripts/venv.sh", "scripts/test.sh", "scripts/quickstart.sh"],
)
def test_shell_scripts_parse(script: str) -> None:
    # Given one of the scripts make and CI run; Then bash can parse it
    path = ROOT / script
    if not path.exists():
        pytest.fail(f"{script} is missing")
    bash = shutil.which("bash") or "/bin/bash"
    result = subprocess.run([bash, "-n", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
