"""`herd status`, `herd version`, list-pipeline's job columns and colours, `list-job --state` (issue 11).

Embedded default on a real local store, through the installed console script (and a real
pseudo-terminal for colours). Distributed mode with a broker that does not answer (a closed
port) is real too; with a live Redis it is tested in tests/distributed/test_status.py.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from storage.layout import STORAGE_FORMAT
from tests.fixtures.services import free_port

ROOT = Path(__file__).resolve().parents[2]
HERD = Path(sys.executable).with_name("herd")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
RED = "\x1b[31m"

OK_SPEC = {"pipeline": {"name": "good"}, "transform": {"image": "busybox", "cmd": ["sh", "-c", "cp $in /pfs/out/"]},
           "input": {"pfs": {"repo": "in", "name": "in", "glob": "/*"}}}
BAD_SPEC = {"pipeline": {"name": "bad"}, "transform": {"image": "busybox", "cmd": ["sh", "-c", "exit 3"]},
            "input": {"pfs": {"repo": "in", "glob": "/*"}}}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_"))}
    return {**clean, "HERD_STORAGE": f"file://{tmp_path / 'store'}", "HERD_RUNTIME": "local"}


def run(env: dict[str, str], *args: str, stdin: str | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HERD), *args], env={**env, **extra}, input=stdin, capture_output=True, text=True,
                          timeout=120)


def ok(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = run(env, *args, stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def pipelines(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A store with a pipeline whose last job succeeded and one whose last job failed."""
    ok(env, "create-repo", "in")
    ok(env, "put-file", "in", "master", "/a", "-f", "-", stdin="alpha\n")
    for spec in (OK_SPEC, BAD_SPEC):
        path = tmp_path / f"{spec['pipeline']['name']}.json"
        path.write_text(json.dumps(spec))
        ok(env, "create-pipeline", "-f", str(path))
    return env


# ---- herd status / herd version ------------------------------------------------------------


def test_status_embedded_shows_the_store_and_exits_0(env: dict[str, str], tmp_path: Path) -> None:
    ok(env, "create-repo", "in")
    out = ok(env, "status")
    lines = out.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "STATE", "DETAIL"]
    assert lines[1].split() == ["storage", str(tmp_path / "store"), "up", "format", str(STORAGE_FORMAT)]
    assert len(lines) == 2  # no broker, scheduler or worker rows: this CLI runs jobs itself
    raw = json.loads(ok(env, "status", "--json"))
    assert raw["mode"] == "embedded" and raw["ok"] is True and raw["storage"]["format"] == STORAGE_FORMAT
    assert raw["jobs"] == [] and raw["problems"] == []


def test_status_names_a_storage_that_cannot_be_opened(env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run(env, "status", HERD_STORAGE=f"file://{blocker}/store")
    assert proc.returncode == 6, proc.stderr
    assert "storage" in proc.stdout and "down" in proc.stdout
    assert proc.stderr.startswith(f"error: storage {blocker}/store is unreachable") and "Traceback" not in proc.stderr


def test_status_with_a_broker_that_does_not_answer_exits_6_naming_it(env: dict[str, str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    proc = run(env, "status", HERD_BROKER=url)
    assert proc.returncode == 6, proc.stderr
    rows = [line.split()[:3] for line in proc.stdout.splitlines()[1:]]
    assert rows[:2] == [["storage", rows[0][1], "up"], ["broker", url, "down"]]
    assert proc.stderr.count("\n") == 1 and url in proc.stderr and "unreachable" in proc.stderr
    raw = run(env, "status", "--json", HERD_BROKER=url)
    assert raw.returncode == 6 and json.loads(raw.stdout)["broker"]["up"] is False


def test_status_never_shows_a_password(env: dict[str, str]) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    proc = run(env, "status", "--json", HERD_BROKER=url)
    assert "hunter2" not in proc.stdout + proc.stderr


def test_version_embedded(env: dict[str, str], tmp_path: Path) -> None:
    # A store nothing opened yet has no format: version reads, never writes
    assert ok(env, "version").splitlines()[2].split()[2:] == ["unknown:", "no", "format", "marker"]
    assert not (tmp_path / "store" / "_herd" / "format").exists()
    ok(env, "list-repo")  # the first command that uses the store marks it
    out = ok(env, "version")
    assert [line.split() for line in out.splitlines()] == [
        ["COMPONENT", "NAME", "VERSION"], ["client", "herd", VERSION], ["storage", str(tmp_path / "store"), "format", str(STORAGE_FORMAT)],
    ]
    raw = json.loads(ok(env, "version", "--json"))
    assert raw["client"] == VERSION and raw["storage"]["reads_up_to"] == STORAGE_FORMAT
    assert "schedulers" not in raw  # embedded: no services to ask


def test_version_reports_a_newer_store_without_refusing(env: dict[str, str], tmp_path: Path) -> None:
    ok(env, "create-repo", "in")
    (tmp_path / "store" / "_herd" / "format").write_text("7\n")
    out = ok(env, "version")
    assert f"format 7 (newer than this herd reads: {STORAGE_FORMAT})" in out
    # while every command that uses the store refuses it in one line
    proc = run(env, "list-repo")
    assert proc.returncode == 9 and proc.stderr.count("\n") == 1 and "format 7" in proc.stderr
    # and status names it as the problem
    proc = run(env, "status")
    assert proc.returncode == 6 and f"has format 7, newer than this herd reads (format {STORAGE_FORMAT})" in proc.stderr


# ---- list-pipeline ----------------------------------------------------------------------------


def test_list_pipeline_shows_the_last_job_state_and_progress(pipelines: dict[str, str]) -> None:
    lines = ok(pipelines, "list-pipeline").splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "INPUT", "CREATED", "STATE", "JOB", "PROGRESS", "LAST", "JOB"]
    rows = {line.split()[0]: re.split(r" {3,}", line.strip()) for line in lines[1:]}
    assert rows["good"][-3:] == ["running", "1 + 0 / 1", "success"]
    assert rows["bad"][-3:-1] == ["running", "0 + 0 / 1"] and rows["bad"][-1].startswith("failure")
    assert RED not in "".join(lines)  # a pipe: no colour
    raw = {json.loads(line)["pipeline"]["name"]: json.loads(line) for line in ok(pipelines, "list-pipeline", "--json").splitlines()}
    assert raw["good"]["last_job"]["state"] == "JOB_SUCCESS" and raw["good"]["last_job"]["data_processed"] == 1
    assert raw["bad"]["last_job"]["state"] == "JOB_FAILURE" and raw["bad"]["last_job"]["data_failed"] == 1


def test_list_pipeline_before_any_job_shows_none(env: dict[str, str], tmp_path: Path) -> None:
    ok(env, "create-repo", "in")
    path = tmp_path / "good.json"
    path.write_text(json.dumps(OK_SPEC))
    ok(env, "create-pipeline", "-f", str(path))  # no commit yet: no job
    line = ok(env, "list-pipeline").splitlines()[1]
    assert line.split()[-2:] == ["<none>", "<none>"]
    assert json.loads(ok(env, "list-pipeline", "--json"))["last_job"] is None


def _on_a_terminal(env: dict[str, str], *args: str) -> str:
    """Run herd with its stdout on a real pseudo-terminal; what it wrote there."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([str(HERD), *args], env={**env, "TERM": "xterm"}, stdout=follower,
                              stderr=subprocess.PIPE, timeout=120)
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.returncode == 0, proc.stderr
        return b"".join(chunks).decode()
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)


def test_list_pipeline_colours_failures_on_a_terminal_only(pipelines: dict[str, str]) -> None:
    shown = _on_a_terminal(pipelines, "list-pipeline").replace("\r\n", "\n")
    rows = {line.split()[0]: line for line in shown.splitlines()[1:] if line.strip()}
    assert RED in rows["bad"] and "failure" in rows["bad"].split(RED, 1)[1]
    assert "\x1b[" not in rows["good"]  # success is not coloured
    assert "\x1b[" not in shown.splitlines()[0]


def test_colour_failures_is_pure_and_keeps_the_layout() -> None:
    from click import unstyle

    from scheduler.cli.pps import colour_failures

    table = "NAME   LAST JOB\na      success\nb      failure: exit 3"
    assert colour_failures(table, [None, "failure: exit 3"], terminal=False) == table
    coloured = colour_failures(table, [None, "failure: exit 3"], terminal=True)
    assert unstyle(coloured) == table and coloured.splitlines()[2].startswith("b      \x1b[")
    # a cell that is not where it is expected is left alone rather than mangled
    assert colour_failures(table, ["nope", None], terminal=True) == table


# ---- list-job --state ---------------------------------------------------------------------------


def test_list_job_filters_by_state(pipelines: dict[str, str]) -> None:
    def pipelines_of(*args: str) -> list[str]:
        return sorted(json.loads(line)["pipeline"]["name"] for line in ok(pipelines, "list-job", "--json", *args).splitlines())

    assert pipelines_of() == ["bad", "good"]
    assert pipelines_of("--state", "failure") == ["bad"]
    assert pipelines_of("--state", "JOB_SUCCESS") == ["good"]
    assert pipelines_of("--state", "Success", "-p", "good") == ["good"]
    assert pipelines_of("--state", "running") == []
    table = ok(pipelines, "list-job", "--state", "failure").splitlines()
    assert len(table) == 2 and " bad " in f" {table[1]} "


def test_list_job_refuses_an_unknown_state_naming_the_allowed_ones(pipelines: dict[str, str]) -> None:
    proc = run(pipelines, "list-job", "--state", "finished")
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr == (
        "error: invalid --state 'finished': expected one of starting, running, success, failure, killed, "
        "egressing, unrunnable (or JOB_<STATE>)\n"
    )
    assert proc.stdout == ""
