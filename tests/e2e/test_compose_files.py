"""The compose files as text: fast checks that run in every `make test` (no engine, not e2e).

What the issue asks of docker-compose.yml (no `version:` key, healthchecks, depends_on
conditions, overridable images and credentials, loopback ports, a scalable worker with the
engine socket), that compose/herd.env.example lists every variable and every herd setting,
that no registry host is written anywhere, and that Compose itself accepts the files: both
Compose v1 (`docker-compose`, Debian's 1.29) and Compose v2 (`docker compose`, the docker CLI
plugin scripts/services.sh installs), since users run either. A missing one skips locally and
fails under CI.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pydantic_settings import BaseSettings

from tests.fixtures.services import missing_service

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "docker-compose.yml"
CI = ROOT / "compose" / "ci.yml"
ENV_EXAMPLE = ROOT / "compose" / "herd.env.example"
PROMETHEUS = ROOT / "compose" / "prometheus.yml"
OURS = [MAIN, CI, ENV_EXAMPLE, ROOT / "compose/Dockerfile", ROOT / "compose/build-images.sh",
        ROOT / "compose/bucket_init.py", ROOT / "compose/README.md", PROMETHEUS]
VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?-[^}]*)?\}")
# A host name followed by a path (`host.tld/...`, `host.tld:5000/...`): how an image reference or
# an index URL names a registry. Written as a shape so that this file names no host either.
HOST_AND_PATH = re.compile(r"(?<![\w.-])((?:[a-z0-9-]+\.)+[a-z]{2,})(?::\d+)?/[\w.-]", re.I)
# Set by the stack itself, never passed through (docker-compose.yml's x-herd-env says why).
FIXED_SETTINGS = {"HERD_STORAGE", "HERD_S3_ENDPOINT_URL", "HERD_BROKER", "HERD_RUNTIME", "HERD_WORKER_ID", "HERD_SCRATCH",
                  # Each service's own metrics port (9101 scheduler, 9102 workers), what Prometheus scrapes.
                  "HERD_METRICS_PORT",
                  # Crash points for tests (storage/failpoints.py): a deployment never sets them.
                  "HERD_FAILPOINTS",
                  # The server's address is its command line (`serve --host 0.0.0.0 --port 8650`,
                  # published on SERVER_PORT); HERD_ADDRESS is the CLI's, never a service's.
                  "HERD_SERVE_HOST", "HERD_SERVE_PORT", "HERD_ADDRESS",
                  # The CLI's token and its folder: a user's, never a service's.
                  "HERD_TOKEN", "HERD_CONFIG_DIR"}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def uncommented(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


def herd_settings() -> set[str]:
    """HERD_<FIELD> of every pydantic-settings class in storage/scheduler/worker settings."""
    names = set()
    for module_name in ("storage.settings", "scheduler.settings", "worker.settings", "scheduler.server.settings",
                        "scheduler.remote.settings"):
        module = importlib.import_module(module_name)
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj.__module__ == module_name:
                prefix = obj.model_config.get("env_prefix", "")
                names |= {f"{prefix}{field}".upper() for field in obj.model_fields}
    return names


def test_main_file_has_no_version_key_and_the_four_services() -> None:
    spec = load(MAIN)
    assert "version" not in spec
    assert {"redis", "minio", "bucket-init", "scheduler", "worker", "server"} <= set(spec["services"])
    assert set(spec["volumes"]) == {"redis-data", "minio-data"}


def test_every_long_running_service_has_a_healthcheck_and_depends_on_conditions() -> None:
    services = load(MAIN)["services"]
    for name, service in services.items():
        if name != "bucket-init":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dep, how in service.get("depends_on", {}).items():
            assert how["condition"] in ("service_healthy", "service_completed_successfully"), (name, dep)
    assert services["scheduler"]["depends_on"]["bucket-init"]["condition"] == "service_completed_successfully"
    assert services["worker"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["bucket-init"]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_redis_is_append_only_on_a_named_volume() -> None:
    redis = load(MAIN)["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in redis["volumes"]


def test_images_and_credentials_are_overridable_and_ports_on_loopback() -> None:
    services = load(MAIN)["services"]
    for name, service in services.items():
        assert VARIABLE.fullmatch(service["image"]), f"{name}: image {service['image']!r} is not ${{VAR:-default}}"
        for port in service.get("ports", []):
            assert re.fullmatch(r"\$\{[A-Z_]+:-127\.0\.0\.1:\d+\}:\d+", port), f"{name}: port {port!r}"
    env = services["scheduler"]["environment"]
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "HERD_STORAGE", "HERD_BROKER", "HERD_S3_ENDPOINT_URL"):
        assert VARIABLE.fullmatch(str(env[key])), f"{key} is not overridable"
    minio = services["minio"]["environment"]
    assert VARIABLE.fullmatch(minio["MINIO_ROOT_USER"]) and VARIABLE.fullmatch(minio["MINIO_ROOT_PASSWORD"])


def test_worker_scales_and_drives_the_hosts_engine() -> None:
    worker = load(MAIN)["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert any(v.endswith(":/var/run/docker.sock") for v in worker["volumes"])
    assert len(worker["volumes"]) == 1  # nothing else of the host: user containers are siblings
    assert worker["environment"]["HERD_RUNTIME"] == "docker"
    assert worker["command"] == ["worker"]
    assert load(MAIN)["services"]["scheduler"]["command"] == ["scheduler"]


def test_the_server_serves_the_api_on_a_loopback_port() -> None:
    server = load(MAIN)["services"]["server"]
    assert server["command"] == ["serve", "--host", "0.0.0.0", "--port", "8650"]
    assert server["ports"] == ["${SERVER_PORT:-127.0.0.1:8650}:8650"]
    assert "/api/v1/health" in " ".join(server["healthcheck"]["test"])
    assert "HERD_ADDRESS" not in server["environment"]


def test_settings_pass_through_except_the_ones_the_stack_sets() -> None:
    env = load(MAIN)["services"]["worker"]["environment"]
    passed = {k for k, v in env.items() if v is None}
    assert passed == herd_settings() - FIXED_SETTINGS


def test_env_example_lists_every_variable_and_every_herd_setting() -> None:
    listed = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    used = {name for path in (MAIN, CI) for name in VARIABLE.findall(uncommented(path))}
    assert used - listed == set(), "add these compose variables to compose/herd.env.example"
    assert herd_settings() - FIXED_SETTINGS - listed == set(), "add these settings to compose/herd.env.example"


def test_metrics_ports_and_the_monitoring_profile() -> None:
    services = load(MAIN)["services"]
    # Given the scheduler and the workers: each serves metrics on its own port
    assert services["scheduler"]["environment"]["HERD_METRICS_PORT"] == "9101"
    assert services["worker"]["environment"]["HERD_METRICS_PORT"] == "9102"
    assert "${SCHEDULER_METRICS_PORT:-127.0.0.1:9101}:9101" in services["scheduler"]["ports"]
    assert services["worker"]["expose"] == ["9102"]  # inside the network only: workers scale
    # And Prometheus only with `--profile monitoring`, reading compose/prometheus.yml
    prometheus = services["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    assert "./compose/prometheus.yml:/etc/herd/prometheus.yml:ro" in prometheus["volumes"]
    assert "--config.file=/etc/herd/prometheus.yml" in prometheus["entrypoint"]
    assert load(CI)["services"]["prometheus"]["image"] == "${PROMETHEUS_IMAGE:-herd-prometheus:local}"
    # And Flower only with `--profile flower`: the herd image, Celery's app found as worker.app
    flower = services["flower"]
    assert flower["profiles"] == ["flower"] and flower["image"] == services["worker"]["image"]
    assert [flower["entrypoint"][0], *flower["command"][:3]] == ["celery", "-A", "worker.app", "flower"]
    assert "${FLOWER_PORT:-127.0.0.1:5555}:5555" in flower["ports"]
    # And no other service is behind a profile (a plain `up` starts the whole cluster)
    assert sorted(name for name, s in services.items() if "profiles" in s) == ["flower", "prometheus"]


def test_prometheus_scrapes_the_scheduler_and_every_worker_replica() -> None:
    jobs = {job["job_name"]: job for job in load(PROMETHEUS)["scrape_configs"]}
    assert jobs["herd-scheduler"]["static_configs"] == [{"targets": ["scheduler:9101"]}]
    (workers,) = jobs["herd-worker"]["dns_sd_configs"]
    assert (workers["names"], workers["type"], workers["port"]) == (["worker"], "A", 9102)


def test_no_registry_host_is_written() -> None:
    for path in OURS:
        if path.exists():
            hosts = {m.group(1) for m in HOST_AND_PATH.finditer(path.read_text())}
            assert not hosts, f"{path.name} names a host (a registry?): {sorted(hosts)}"


def compose_version(argv: list[str]) -> str:
    """`version --short` of a Compose command, or '' when it does not run."""
    if not shutil.which(argv[0]):
        return ""
    proc = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True, timeout=60)
    return proc.stdout.strip().removeprefix("v") if proc.returncode == 0 else ""


@pytest.fixture(params=["v1", "v2"], scope="module")
def compose(request: pytest.FixtureRequest) -> list[str]:
    """The Compose command of one major version; a missing one skips locally, fails under CI."""
    argv, how = {
        "v1": (["docker-compose"], "apt-get install docker-compose"),
        "v2": (["docker", "compose"], "bash scripts/services.sh install: the docker CLI plugin"),
    }[request.param]
    version = compose_version(argv)
    if not version.startswith(request.param[1] + "."):
        found = f"it is {version}" if version else "it does not run"
        missing_service(f"Compose {request.param} (`{' '.join(argv)}`) is needed and {found} ({how})")
    return argv


def compose_config(compose: list[str], files: list[Path]) -> subprocess.CompletedProcess[str]:
    argv = [*compose, "--project-directory", str(ROOT)]
    for path in files:
        argv += ["-f", str(path)]
    return subprocess.run([*argv, "config", "-q"], capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize("files", [[MAIN], [MAIN, CI]], ids=["main", "main+ci"])
def test_compose_accepts_the_files(compose: list[str], files: list[Path]) -> None:
    proc = compose_config(compose, files)
    assert proc.returncode == 0, proc.stderr


def test_compose_refuses_a_broken_file(compose: list[str], tmp_path: Path) -> None:
    # Given the main file with one service given a key Compose does not know
    spec = load(MAIN)
    spec["services"]["worker"]["no_such_key"] = True
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(spec))
    # Then `config` refuses it: the check above really validates, in both versions
    proc = compose_config(compose, [broken])
    assert proc.returncode != 0 and "no_such_key" in proc.stderr, proc.stderr
