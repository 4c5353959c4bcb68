"""Every setting is checked when it is loaded: a bad value is one InvalidArgument naming the variable.

The CLI loads every class before a command runs (tests/scheduler/test_cli_input.py runs the real
console script); here each value is loaded in-process, so every field has cases of its own.
"""

from __future__ import annotations

import math

import pytest
from pydantic_settings import BaseSettings

from scheduler.cli.context import SETTINGS_CLASSES, check_settings
from scheduler.settings import SchedulerSettings
from storage.errors import InvalidArgument
from storage.setting_types import load_settings
from storage.settings import FailpointSettings, StorageSettings
from worker.settings import WorkerSettings

CLASSES: tuple[type[BaseSettings], ...] = (StorageSettings, FailpointSettings, SchedulerSettings, WorkerSettings)

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
    "HERD_RUNTIME": ["", "dockr", "Docker", "local "],
    "HERD_CONCURRENCY": ["0", "-1", "two", "", "100000"],
    "HERD_VISIBILITY_TIMEOUT": ["0", "abc", "inf"],
    "HERD_SCRATCH": ["", "relative/dir", "/tmp/a\nb"],
    "HERD_WORKER_ID": ["", "a b", "w\x1b[31m", "x" * 300],
    "HERD_LEASE_SECONDS": ["0", "-1", "nan"],
    "HERD_USER_NETWORK": ["", "maybe", "2"],
    "HERD_OUTPUT_QUOTA": ["0", "-5", "1.5", "lots", "1KB"],
    "HERD_LOCAL_ISOLATION": ["", "docker", "BWRAP", "none"],
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
    ("HERD_USER_NETWORK", "False", "user_network", False),
    ("HERD_USER_NETWORK", "1", "user_network", True),
    ("HERD_STORAGE", "file:///data/my herd", "storage", "file:///data/my herd"),
    ("HERD_STORAGE", "s3://bucket/prefix", "storage", "s3://bucket/prefix"),
    ("HERD_STORAGE", "memory://", "storage", "memory://"),
    ("HERD_RUNTIME", "docker", "runtime", "docker"),
    ("HERD_SCRATCH", "/var/lib/herd/scratch", "scratch", "/var/lib/herd/scratch"),
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
    assert {cls.__module__ + ":" + cls.__name__ for cls in CLASSES} == set(SETTINGS_CLASSES)


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
        check_settings()
    # Then one line starts with the variable's name and shows the value, escaped
    message = str(info.value)
    shown = repr(value) if len(repr(value)) <= 200 else repr(value)[:200] + "..."  # long ones cut
    assert message.startswith(f"{env}: invalid value {shown}: expected"), message
    assert len(message) < 400
    assert "\n" not in message and "\x1b" not in message
    assert "Input should be" not in message  # our words, not pydantic's


def test_a_password_in_a_bad_url_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERD_BROKER", "redis://user:s3cret@host:port/0")
    with pytest.raises(InvalidArgument) as info:
        check_settings()
    assert "s3cret" not in str(info.value) and "user:***@host" in str(info.value)


@pytest.mark.parametrize(("env", "value", "field", "expected"), GOOD)
def test_good_values_load(monkeypatch: pytest.MonkeyPatch, env: str, value: str, field: str, expected: object) -> None:
    monkeypatch.setenv(env, value)
    check_settings()
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
