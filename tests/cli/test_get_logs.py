"""`herd get-logs`: --follow, --tail, --inputs, --datum, --raw/--json, attempts, the cut, old records;
and a follower in another process seeing a running datum's line (the embedded default)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from scheduler.cli import cli
from scheduler.store import PpsStore
from storage.local import LocalObjectStore

HERD = str(Path(sys.executable).with_name("herd"))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def herd(store: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HERD_STORAGE", f"file://{store}")
    monkeypatch.delenv("HERD_BROKER", raising=False)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Result:
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return run


def pipeline(herd, tmp_path: Path, name: str, script: str, files: dict[str, str], **extra: object) -> str:
    """Create repo `in` with `files`, then pipeline `name` running `script`; returns the job id."""
    herd("create-repo", "in")
    folder = tmp_path / "files"
    folder.mkdir()
    for path, text in files.items():
        (folder / path.lstrip("/")).write_text(text)
    herd("put-file", "in", "master", "/", "-r", "-f", str(folder))  # one commit: one job
    spec = {"pipeline": {"name": name}, "transform": {"cmd": ["sh", "-c", script]},
            "input": {"pfs": {"repo": "in", "glob": "/*"}}, **extra}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    herd("create-pipeline", "-f", str(tmp_path / "spec.json"))
    return json.loads(herd("list-job", "--json").output.splitlines()[0])["job"]["id"]


def test_flags_select_datums_lines_and_format(herd, tmp_path: Path) -> None:
    # Given a job of two datums, each printing on stdout and stderr
    job = pipeline(herd, tmp_path, "echo", 'n=$(basename $in); echo out $n; echo err $n >&2',
                   {"/a": "1", "/b": "2"})
    every = herd("get-logs", "--job", job)  # both streams' lines on stdout, as pachctl prints them
    assert sorted(every.stdout.splitlines()) == ["err a", "err b", "out a", "out b"]
    assert every.stderr == ""
    assert every.stdout.splitlines().index("out a") < every.stdout.splitlines().index("err a")
    # --inputs: only datums whose input files match (a path, or input:path; comma-separated)
    assert herd("get-logs", "--job", job, "--inputs", "/a").stdout == "out a\nerr a\n"
    assert herd("get-logs", "-p", "echo", "--inputs", "in:/b").stdout == "out b\nerr b\n"
    assert len(herd("get-logs", "-p", "echo", "--inputs", "/b,a").stdout.splitlines()) == 4
    assert herd("get-logs", "--job", job, "--inputs", "/nothing").output == ""
    # --datum (by input path or id prefix) needs --job
    assert herd("get-logs", "--job", job, "--datum", "/b").stdout == "out b\nerr b\n"
    assert "--datum needs --job" in herd("get-logs", "--datum", "/b", code=4).output
    # --tail N: the last N lines of the selection
    assert herd("get-logs", "--job", job, "--datum", "/a", "--tail", "1").output == "err a\n"
    assert herd("get-logs", "--job", job, "--tail", "0").output == ""
    # --json: JSON lines with herd's names
    raw = [json.loads(line) for line in herd("get-logs", "--job", job, "--json").stdout.splitlines()]
    assert {(r["stream"], r["message"]) for r in raw} == {
        ("stdout", "out a"), ("stdout", "out b"), ("stderr", "err a"), ("stderr", "err b")}
    for r in raw:
        assert r["pipeline"] == "echo" and r["job"] == job and r["attempt"] == 1 and r["worker"]
        assert r["timestamp"] and r["datum"] and set(r) == {
            "pipeline", "job", "datum", "attempt", "worker", "timestamp", "stream", "message"}
    # --raw: pachctl 1.x's LogMessage, lowerCamel, the attempt a 64-bit number as a string
    raw = [json.loads(line) for line in herd("get-logs", "--job", job, "--raw").stdout.splitlines()]
    assert {(r["user"], r["message"]) for r in raw} == {(True, "out a"), (True, "out b"), (True, "err a"), (True, "err b")}
    for r in raw:
        assert r["pipelineName"] == "echo" and r["jobId"] == job and r["workerId"] and r["datumId"]
        assert r["master"] is False and r["attempt"] == "1" and r["ts"].endswith("Z")
    # -f on a job that has ended prints its lines and returns
    assert sorted(herd("get-logs", "--job", job, "-f").stdout.splitlines()) == ["err a", "err b", "out a", "out b"]


def test_a_retried_datum_shows_each_attempt_marked(herd, tmp_path: Path) -> None:
    job = pipeline(herd, tmp_path, "fragile", "echo trying; exit 3", {"/x": "1"}, datum_tries=2)
    result = herd("get-logs", "--job", job)
    assert result.stdout == "trying\ntrying\n"
    notes = result.stderr.splitlines()
    assert any("attempt 2" in n and n.startswith("[herd] datum") for n in notes), notes
    assert sum("user code exited with code 3" in n for n in notes) == 2, notes
    raw = [json.loads(line) for line in herd("get-logs", "--job", job, "--json").stdout.splitlines()]
    assert [(r["attempt"], r["stream"]) for r in raw if r["stream"] == "stdout"] == [(1, "stdout"), (2, "stdout")]


def test_long_output_keeps_head_and_tail_and_names_the_cut(herd, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HERD_LOG_HEAD_BYTES", "20")
    monkeypatch.setenv("HERD_LOG_TAIL_BYTES", "20")
    job = pipeline(herd, tmp_path, "chatty", 'i=100; while [ $i -lt 200 ]; do echo "line $i"; i=$((i+1)); done',
                   {"/x": "1"})
    result = herd("get-logs", "--job", job)
    lines = result.stdout.splitlines()
    assert lines[:2] == ["line 100", "line 101"] and lines[-2:] == ["line 198", "line 199"]
    assert len(lines) == 4
    assert "[herd] … 864 bytes cut (96 lines) …" in result.stderr


def test_records_of_the_previous_herd_still_show(herd, tmp_path: Path, store: Path) -> None:
    # Given a job, and an attempt summary in the format herd wrote before live logs
    job = pipeline(herd, tmp_path, "quiet", "true", {"/x": "1"})
    records = PpsStore(LocalObjectStore(store))
    datum = records.read_plan(job).datums[0].id
    records.put_log(job, datum, 7, {
        "job_id": job, "pipeline": "quiet", "datum_id": datum, "attempt": 7, "worker": "old-worker",
        "state": "FAILURE", "reason": "user code exited with code 1", "stdout": "legacy out\n",
        "stderr": "legacy err\n", "ts": "2026-01-01T00:00:00+00:00",
    })
    result = herd("get-logs", "--job", job)
    assert result.stdout == "legacy out\nlegacy err\n"
    assert "user code exited with code 1" in result.stderr
    raw = json.loads(herd("get-logs", "--job", job, "--json").stdout.splitlines()[0])
    assert raw["worker"] == "old-worker" and raw["attempt"] == 7 and raw["message"] == "legacy out"


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """One line of a follower's stdout, or b'' if none came within `timeout`."""
    assert proc.stdout is not None
    fd, data = proc.stdout.fileno(), b""
    end = time.monotonic() + timeout
    while not data.endswith(b"\n") and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 1)
            if not chunk:
                break
            data += chunk
    return data


def test_a_follower_in_another_process_sees_a_running_datums_line(tmp_path: Path, store: Path) -> None:
    # Given the embedded default: create-pipeline runs the job in its own process, a datum that
    # prints a line, sleeps 5 s and prints another
    env = {**os.environ, "HERD_STORAGE": f"file://{store}", "HERD_RUNTIME": "local"}
    env.pop("HERD_BROKER", None)
    run = lambda *args: subprocess.run([HERD, *args], env=env, capture_output=True, check=True, timeout=120)  # noqa: E731
    run("create-repo", "in")
    (tmp_path / "x").write_text("x")
    run("put-file", "in", "master", "/x", "-f", str(tmp_path / "x"))
    spec = {"pipeline": {"name": "slow"}, "transform": {"cmd": ["sh", "-c", "echo first; sleep 5; echo second >&2"]},
            "input": {"pfs": {"repo": "in", "glob": "/*"}}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    creating = subprocess.Popen([HERD, "create-pipeline", "-f", str(tmp_path / "spec.json")], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    follower = None
    try:
        records = PpsStore(LocalObjectStore(store))
        deadline = time.monotonic() + 60
        while not records.pipeline_names() and time.monotonic() < deadline:
            time.sleep(0.05)
        # When another process follows the pipeline's logs
        follower = subprocess.Popen([HERD, "get-logs", "-f", "-p", "slow"], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        # Then it shows the first line while the datum still runs
        assert _read_line(follower, 60) == b"first\n"
        assert creating.poll() is None, "the job ended before its first line was shown"
        assert creating.wait(timeout=120) == 0, creating.stderr.read() if creating.stderr else ""
        # And, following a pipeline, it keeps going until Ctrl-C, which exits 130 cleanly
        time.sleep(1.5)
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=30)
        assert follower.returncode == 130, err
        assert out == b"second\n" and b"Traceback" not in err
    finally:
        for proc in (creating, follower):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
