"""Every setting is checked when it is loaded: a bad value is one InvalidArgument naming the variable.

The CLI loads every class before a command runs (tests/cli/test_cli_input.py runs the real
console script); here each value is loaded in-process, so every field has cases of its own.
"""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from scheduler.cli.wiring import load_all_settings
from scheduler.cli.wiring import settings_classes
from scheduler.remote.settings import RemoteSettings
from scheduler.server.settings import ServerSettings
from scheduler.settings import BrokerSettings, SchedulerSettings
from storage.errors import InvalidArgument
from storage.setting_types import load_settings
from storage.settings import FailpointSettings, StorageSettings
from worker.settings import WorkerSettings

CLASSES: tuple[type[BaseSettings], ...] = (StorageSettings, FailpointSettings, SchedulerSettings, WorkerSettings,
                                           RemoteSettings, ServerSettings)

# Values each variable must refuse. Every field of every class has a row (checked below), so a
# new setting cannot arrive unchecked.
BAD: dict[str, list[str]] = {
    "HERD_STORAGE": ["", "ftp://x/y", "/plain/path", "file://host/path", "file://relative", "s3:///nobucket",
                     "file:///a\nb", "memory"],
    "HERD_S3_ENDPOINT_URL": ["localhost:9000", "ftp://h", "http://", "http://h:port", "http://h\n"],
    "HERD_BROKER": ["http://h:6379", "redis://h:port/0", "redis://h/zero", "localhost:6379", "redis://h\x1b/0"],
    "HERD_QUEUE": ["", "a b", "q\n", "x" * 256],
    "HERD_PARALLELISM": ["abc", "0", "-1", "1.5", "", "1e3", "1025", "true", "\u0661"],
    "HERD_RECONCILE_INTERVAL": ["0", "-1", "nan", "inf", "abc", "", "1e9"],
    "HERD_BATCH_SECONDS": ["0", "nan", "-inf", "x"],
    "HERD_RESEND_SECONDS": ["0", "-5", "inf", ""],
    "HERD_LOCK_SECONDS": ["0", "-1", "NaN", "ten"],
    "HERD_HEARTBEAT_SECONDS": ["0", "-2", "inf", "soon"],
    "HERD_RUNTIME": ["", "dockr", "Docker", "local "],
    "HERD_CONCURRENCY": ["0", "-1", "two", "", "100000"],
    "HERD_VISIBILITY_TIMEOUT": ["0", "abc", "inf"],
    "HERD_SCRATCH": ["", "relative/dir", "/tmp/a\nb"],
    "HERD_SECRETS_DIR": ["relative/dir", "/tmp/a\nb"],  # empty = unset: no secrets held
    "HERD_WORKER_ID": ["", "a b", "w\x1b[31m", "x" * 300],
    "HERD_LEASE_SECONDS": ["0", "-1", "nan"],
    "HERD_USER_NETWORK": ["", "maybe", "2"],
    "HERD_OUTPUT_QUOTA": ["0", "-5", "1.5", "lots", "1KB"],
    "HERD_LOCAL_ISOLATION": ["", "docker", "BWRAP", "none"],
    "HERD_OUTAGE_SECONDS": ["0", "-1", "nan", "inf", "", "five", "1e9"],
    "HERD_METRICS_PORT": ["0", "-1", "65536", "80a", "9.5", "true", "\u0661"],
    "HERD_LOG_FORMAT": ["", "JSON", "text", "json "],
    "HERD_LOG_FLUSH_SECONDS": ["0", "-1", "nan", "inf", "", "soon"],
    "HERD_LOG_HEAD_BYTES": ["-1", "1.5", "1MB", "", "lots"],
    "HERD_LOG_TAIL_BYTES": ["-1", "1.5", "1MB", "", "lots"],
    "HERD_ADDRESS": ["localhost:8650", "ftp://h", "http://", "http://h:port", "http://h\n"],
    "HERD_TOKEN": ["a b", "tok\nen", "x" * 1001, "t\x1b[31m", "\u00e9"],
    "HERD_CONFIG_DIR": ["relative/dir", "/tmp/a\nb", "~/herd"],
    "HERD_SERVE_HOST": ["", "a b", "h\n"],
    "HERD_SERVE_PORT": ["0", "-1", "65536", "80a", "", "true"],
}
# Values that must load, with what they load as.
GOOD: list[tuple[str, str, str, object]] = [
    ("HERD_S3_ENDPOINT_URL", "", "s3_endpoint_url", None),  # empty = unset
    ("HERD_S3_ENDPOINT_URL", "http://127.0.0.1:9000", "s3_endpoint_url", "http://127.0.0.1:9000"),
    ("HERD_BROKER", "", "broker", None),
    ("HERD_BROKER", "redis://:pw@host:6379/2", "broker", "redis://:pw@host:6379/2"),
    ("HERD_BROKER", "rediss://host", "broker", "rediss://host"),
    ("HERD_OUTPUT_QUOTA", "", "output_quota", None),
    ("HERD_OUTPUT_QUOTA", "1048576", "output_quota", 1048576),
    ("HERD_PARALLELISM", " 8 ", "parallelism", 8),
    ("HERD_LOCK_SECONDS", "2.5", "lock_seconds", 2.5),
    ("HERD_HEARTBEAT_SECONDS", "0.5", "heartbeat_seconds", 0.5),
    ("HERD_USER_NETWORK", "False", "user_network", False),
    ("HERD_USER_NETWORK", "1", "user_network", True),
    ("HERD_STORAGE", "file:///data/my herd", "storage", "file:///data/my herd"),
    ("HERD_STORAGE", "s3://bucket/prefix", "storage", "s3://bucket/prefix"),
    ("HERD_STORAGE", "memory://", "storage", "memory://"),
    ("HERD_RUNTIME", "docker", "runtime", "docker"),
    ("HERD_SCRATCH", "/var/lib/herd/scratch", "scratch", "/var/lib/herd/scratch"),
    ("HERD_SECRETS_DIR", "", "secrets_dir", None),
    ("HERD_SECRETS_DIR", "/run/secrets/herd", "secrets_dir", "/run/secrets/herd"),
    ("HERD_OUTAGE_SECONDS", "5", "outage_seconds", 5.0),
    ("HERD_QUEUE", "herd-b", "queue", "herd-b"),
    ("HERD_METRICS_PORT", "", "metrics_port", None),  # empty = unset: no metrics
    ("HERD_METRICS_PORT", " 9101 ", "metrics_port", 9101),
    ("HERD_LOG_FORMAT", "json", "log_format", "json"),
    ("HERD_LOG_FLUSH_SECONDS", "0.2", "log_flush_seconds", 0.2),
    ("HERD_LOG_HEAD_BYTES", "0", "log_head_bytes", 0),  # nothing live: only the tail, when the attempt ends
    ("HERD_LOG_TAIL_BYTES", " 4096 ", "log_tail_bytes", 4096),
    ("HERD_ADDRESS", "", "address", None),  # empty = unset: storage itself
    ("HERD_ADDRESS", "http://127.0.0.1:8650", "address", "http://127.0.0.1:8650"),
    ("HERD_TOKEN", "", "token", None),
    ("HERD_SERVE_PORT", " 9000 ", "serve_port", 9000),
    ("HERD_SERVE_HOST", "0.0.0.0", "serve_host", "0.0.0.0"),
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HERD_* variable from the developer's shell or other fixtures."""
    import os

    for name in [n for n in os.environ if n.startswith("HERD_")]:
        monkeypatch.delenv(name)


def _env_names(cls: type[BaseSettings]) -> dict[str, str]:
    prefix = str(cls.model_config.get("env_prefix") or "")
    return {f"{prefix}{field}".upper(): field for field in cls.model_fields}


def _load_all() -> None:
    for cls in CLASSES:
        load_settings(cls)


def test_every_setting_has_bad_values_to_refuse() -> None:
    # Given every field of every settings class the CLI checks (failpoints: any text is a spec)
    fields = {name for cls in CLASSES for name in _env_names(cls)} - {"HERD_FAILPOINTS"}
    # Then each has cases here
    assert fields - set(BAD) == set()
    assert set(CLASSES) == set(settings_classes().values())


def test_defaults_load() -> None:
    # Given no HERD_* variable; Then every class loads with its defaults
    _load_all()
    scheduler = load_settings(SchedulerSettings)
    assert 1 <= scheduler.parallelism <= 1024
    assert load_settings(WorkerSettings).runtime == "auto"
    assert load_settings(StorageSettings).storage.startswith("file:///")


@pytest.mark.parametrize(("env", "value"), [(env, value) for env, values in BAD.items() for value in values])
def test_bad_values_are_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch, env: str, value: str) -> None:
    # Given one bad variable
    monkeypatch.setenv(env, value)
    # When the settings are checked as the CLI checks them
    with pytest.raises(InvalidArgument) as info:
        load_all_settings()
    # Then one line starts with the variable's name and shows the value, escaped
    message = str(info.value)
    shown = repr(value) if len(repr(value)) <= 200 else repr(value)[:200] + "..."  # long ones cut
    if env == "HERD_TOKEN":
        shown = "(hidden)"  # a secret is never shown
    assert message.startswith(f"{env}: invalid value {shown}: expected"), message
    assert len(message) < 400
    assert "\n" not in message and "\x1b" not in message
    assert "Input should be" not in message  # our words, not pydantic's


def test_a_password_in_a_bad_url_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERD_BROKER", "redis://user:s3cret@host:port/0")
    with pytest.raises(InvalidArgument) as info:
        load_all_settings()
    assert "s3cret" not in str(info.value) and "user:***@host" in str(info.value)


@pytest.mark.parametrize(("env", "value", "field", "expected"), GOOD)
def test_good_values_load(monkeypatch: pytest.MonkeyPatch, env: str, value: str, field: str, expected: object) -> None:
    monkeypatch.setenv(env, value)
    load_all_settings()
    loaded = [getattr(load_settings(cls), field) for cls in CLASSES if field in cls.model_fields]
    assert loaded and all(got == expected for got in loaded)


def test_seconds_are_finite_floats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERD_RESEND_SECONDS", "0.25")
    got = load_settings(SchedulerSettings).resend_seconds
    assert got == 0.25 and math.isfinite(got)


def test_settings_built_in_code_are_checked_too() -> None:
    # Given settings built by code (tests, compose/bucket_init.py); Then the same rules hold
    with pytest.raises(InvalidArgument, match="HERD_STORAGE"):
        StorageSettings(storage="ftp://x")
    assert SchedulerSettings(broker=None, parallelism=2).parallelism == 2


def test_loading_returns_each_class_once_by_name() -> None:
    # Given no HERD_* variable; When the CLI loads its settings
    loaded = load_all_settings()
    # Then each class is there once, by its name, ready to be passed down
    assert set(loaded) == set(settings_classes())
    assert {type(s) for s in loaded.values()} == set(CLASSES)


# --- one declaration per variable -------------------------------------------------------------


def declarations(classes: tuple[type[BaseSettings], ...]) -> dict[str, set[str]]:
    """Each environment variable -> the classes (along their bases) whose own body declares it."""
    found: dict[str, set[str]] = defaultdict(set)
    for cls in classes:
        for klass in cls.__mro__:
            if not (isinstance(klass, type) and issubclass(klass, BaseSettings)) or klass is BaseSettings:
                continue
            prefix = str(klass.model_config.get("env_prefix") or "")
            for field in vars(klass).get("__annotations__", {}):
                if field in klass.model_fields:
                    found[f"{prefix}{field}".upper()].add(f"{klass.__module__}.{klass.__qualname__}")
    return dict(found)


def test_each_variable_is_declared_once() -> None:
    # Given every settings class (the CLI's, and the broker's they share)
    found = declarations((*CLASSES, BrokerSettings))
    # Then each variable has one declaration: one description, one check, one default
    assert {name: where for name, where in found.items() if len(where) > 1} == {}
    assert found["HERD_BROKER"] == found["HERD_QUEUE"] == {"scheduler.settings.BrokerSettings"}
    # And the scheduler and the worker both read the broker through it
    assert issubclass(SchedulerSettings, BrokerSettings) and issubclass(WorkerSettings, BrokerSettings)


def test_the_declaration_check_sees_a_second_declaration() -> None:
    # Given two unrelated classes that both declare HERD_BROKER (what the issue found)
    class One(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="HERD_")
        broker: str = Field("a")

    class Two(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="HERD_")
        broker: str = Field("b")

    # Then the check names both
    assert len(declarations((One, Two))["HERD_BROKER"]) == 2


def test_broker_and_queue_load_the_same_in_scheduler_and_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERD_BROKER", "redis://h:6379/3")
    monkeypatch.setenv("HERD_QUEUE", "q2")
    scheduler, worker = load_settings(SchedulerSettings), load_settings(WorkerSettings)
    assert (scheduler.broker, scheduler.queue) == (worker.broker, worker.queue) == ("redis://h:6379/3", "q2")


def test_outage_seconds_default() -> None:
    assert load_settings(WorkerSettings).outage_seconds == 300.0


@pytest.mark.parametrize(("cores", "expected"), [(1, 2), (2, 3), (16, 17), (None, 2), (4096, 1024)])
def test_parallelism_defaults_to_one_datum_more_than_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int | None, expected: int,
) -> None:
    # the extra slot runs user code while another datum's slot does herd's own work; at most MAX_WORKERS
    monkeypatch.delenv("HERD_PARALLELISM", raising=False)
    monkeypatch.setattr("scheduler.settings.os.cpu_count", lambda: cores)
    assert load_settings(SchedulerSettings).parallelism == expected


def test_a_pool_process_is_named_by_its_own_pid_unless_a_worker_id_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import socket

    # Given settings loaded in a parent whose pool processes fork from it
    parent = load_settings(WorkerSettings)
    # Then each process takes its own default name; an explicit HERD_WORKER_ID stays as set
    assert parent.for_this_process().worker_id == f"{socket.gethostname()}-{os.getpid()}"
    monkeypatch.setenv("HERD_WORKER_ID", "w1")
    assert load_settings(WorkerSettings).for_this_process().worker_id == "w1"


def test_a_bad_token_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERD_TOKEN", "herd_secret part")
    with pytest.raises(InvalidArgument) as refused:
        load_settings(RemoteSettings)
    assert str(refused.value).startswith("HERD_TOKEN: invalid value (hidden): expected a token")
    assert "secret" not in str(refused.value)
