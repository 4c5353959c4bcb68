"""transform.err_cmd / err_stdin / secrets and Pachyderm's Go duration strings in specs (pure)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.spec import PipelineSpec, parse_duration, parse_spec
from storage.errors import InvalidSpec


def spec(**transform: Any) -> dict[str, Any]:
    return {
        "pipeline": {"name": "p"},
        "transform": {"cmd": ["sh"], **transform},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
    }


def parsed(**transform: Any) -> PipelineSpec:
    return parse_spec(spec(**transform))


# Go durations ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [
    ("1h30m", 5400.0), ("1.5s", 1.5), ("300ms", 0.3), ("2m0s", 120.0), ("0", 0.0), ("0s", 0.0),
    ("1h", 3600.0), ("1.5h", 5400.0), ("10us", 1e-5), ("10µs", 1e-5), ("10μs", 1e-5), ("100ns", 1e-7),
    ("1h2m3.5s", 3723.5), (".5s", 0.5), ("1.s", 1.0), ("+5s", 5.0), ("2h45m0s", 9900.0),
    ("1m1m", 120.0),  # Go adds repeated units up
])
def test_go_durations_parse_like_time_ParseDuration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "5 minutes", "1d", "h", "1.5.s", "s", "1hm", "-", "1e3s", "1 s", " 1s"])
def test_what_go_refuses_is_refused(text: str) -> None:
    with pytest.raises(Exception, match="invalid duration"):
        parse_duration(text)


def test_negative_durations_are_refused_for_timeouts() -> None:
    # Go parses "-1s", but a negative datum_timeout or job_timeout has no meaning
    with pytest.raises(InvalidSpec, match="datum_timeout: invalid duration '-1s'"):
        parse_spec({**spec(), "datum_timeout": "-1s"})


def test_timeouts_round_trip_through_the_canonical_form() -> None:
    s = parse_spec({**spec(), "datum_timeout": "1h30m", "jobTimeout": "2m0s"})
    assert (s.datum_timeout, s.job_timeout) == (5400.0, 120.0)
    dumped = s.model_dump(mode="json", exclude_none=True)
    assert (dumped["datum_timeout"], dumped["job_timeout"]) == ("5400s", "120s")
    assert parse_spec(dumped) == s


@given(st.lists(st.tuples(st.integers(0, 999), st.sampled_from(["h", "m", "s", "ms"])), min_size=1, max_size=4))
def test_any_sum_of_units_parses_to_its_value(parts: list[tuple[int, str]]) -> None:
    factor = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    text = "".join(f"{n}{unit}" for n, unit in parts)
    assert parse_duration(text) == pytest.approx(sum(n * factor[unit] for n, unit in parts))


# err_cmd / err_stdin ----------------------------------------------------------------------------

def test_err_cmd_and_err_stdin_are_fields_herd_acts_on() -> None:
    s = parsed(err_cmd=["sh"], errStdin=["echo recovering", "exit 0"])
    assert s.transform.err_cmd == ["sh"] and s.transform.err_stdin == ["echo recovering", "exit 0"]
    assert s.ignored_fields == []


def test_an_empty_err_cmd_means_none() -> None:
    assert parsed(err_cmd=[]).transform.err_cmd is None  # proto3: an empty list is unset


@pytest.mark.parametrize(("transform", "message"), [
    ({"err_cmd": "sh"}, "transform.err_cmd"),
    ({"err_stdin": [1]}, "transform.err_stdin"),
    ({"err_cmd": ["sh"], "errCmdd": ["x"]}, "unknown field 'transform.errCmdd'"),
])
def test_bad_err_fields_are_refused_by_name(transform: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        parsed(**transform)


# secrets ----------------------------------------------------------------------------------------

def test_secrets_as_pachyderm_writes_them() -> None:
    s = parsed(secrets=[
        {"name": "db-creds", "env_var": "PASSWORD", "key": "password"},
        {"name": "tls.certs", "mountPath": "/etc/certs"},
        {"name": "one", "mount_path": "/etc/one/", "key": "token"},
    ])
    env, mount, keyed = s.transform.secrets
    assert (env.name, env.env_var, env.key, env.mount_path) == ("db-creds", "PASSWORD", "password", None)
    assert (mount.mount_path, mount.key) == ("/etc/certs", None)
    assert keyed.mount_path == "/etc/one"  # normalised
    assert s.ignored_fields == []


@pytest.mark.parametrize(("secret", "message"), [
    ({"name": "s"}, "set exactly one of 'mount_path' and 'env_var'"),
    ({"name": "s", "env_var": "A", "mount_path": "/a", "key": "k"}, "set exactly one"),
    ({"name": "s", "env_var": "A"}, "env_var needs the 'key'"),
    ({"name": "s", "env_var": "1A", "key": "k"}, "invalid env_var '1A'"),
    ({"name": "s", "env_var": "A B", "key": "k"}, "invalid env_var"),
    ({"name": "S", "env_var": "A", "key": "k"}, "invalid secret name 'S'"),
    ({"name": "../etc", "env_var": "A", "key": "k"}, "invalid secret name"),
    ({"name": "a/b", "env_var": "A", "key": "k"}, "invalid secret name"),
    ({"name": "", "env_var": "A", "key": "k"}, "invalid secret name"),
    ({"name": "s", "env_var": "A", "key": ".."}, "invalid key '..'"),
    ({"name": "s", "env_var": "A", "key": "a/b"}, "invalid key of secret 's'"),
    ({"name": "s", "env_var": "A", "key": "k\n"}, "invalid key of secret"),
    ({"name": "s", "mount_path": "relative"}, "must be an absolute path"),
    ({"name": "s", "mount_path": "/a/../pfs"}, "without '.' or '..'"),
    ({"name": "s", "mount_path": "/"}, "is reserved"),
    ({"name": "s", "mount_path": "/pfs/out"}, "is reserved"),
    ({"name": "s", "mount_path": "//pfs"}, "is reserved"),
    ({"name": "s", "mount_path": "/.herd/bin"}, "is reserved"),
    ({"name": "s", "mount_path": "/proc"}, "is reserved"),
    ({"name": "s", "mount_path": "/a", "extra": 1}, "unknown field 'transform.secrets[0].extra'"),
])
def test_bad_secrets_are_refused_naming_the_secret(secret: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=re.escape(message)):
        parsed(secrets=[secret])


def test_one_variable_or_folder_per_secret() -> None:
    twice = [{"name": "a", "env_var": "X", "key": "k"}, {"name": "b", "env_var": "X", "key": "k"}]
    with pytest.raises(InvalidSpec, match="env_var 'X' is used more than once"):
        parsed(secrets=twice)
    with pytest.raises(InvalidSpec, match="mount_path '/s' is used more than once"):
        parsed(secrets=[{"name": "a", "mount_path": "/s"}, {"name": "b", "mount_path": "/s/"}])
