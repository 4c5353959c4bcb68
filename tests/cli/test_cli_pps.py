"""Pipeline verbs through the real CLI entry point, on the embedded default."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from scheduler.cli import cli
from tests.scheduler.pipeline_helpers import WORDCOUNT_MAP, WORDCOUNT_REDUCE

HERD = str(Path(sys.executable).with_name("herd"))


@pytest.fixture
def herd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HERD_STORAGE", f"file://{tmp_path / 'store'}")
    monkeypatch.delenv("HERD_BROKER", raising=False)
    runner = CliRunner()

    def run(*args: str, input: str | None = None, ok: bool = True):
        result = runner.invoke(cli, list(args), input=input, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output + result.stderr
        return result

    return run


def write_spec(tmp_path: Path, *specs: dict, name: str = "spec.json") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(s, indent=2) for s in specs))
    return str(path)


def test_wordcount_through_cli(herd, tmp_path: Path) -> None:
    # Given a repo with two documents (put-file runs nothing yet: no pipeline)
    herd("create-repo", "words")
    herd("put-file", "words", "master", "/a.txt", "-f", "-", input="one two two\n")
    herd("put-file", "words", "master", "/b.txt", "-f", "-", input="two three\n")
    # When both stages are created from one file with two specs
    herd("create-pipeline", "-f", write_spec(tmp_path, WORDCOUNT_MAP, WORDCOUNT_REDUCE))
    # Then the result is there when the command returns
    assert herd("get-file", "reduce", "master", "/two").output == "3\n"
    jobs = [json.loads(line) for line in herd("list-job", "--json").output.splitlines()]
    assert {j["pipeline"]["name"] for j in jobs} == {"map", "reduce"}
    assert all(j["state"] == "JOB_SUCCESS" for j in jobs)
    table = herd("list-job", "-p", "map").output
    assert table.splitlines()[0].split()[:3] == ["ID", "PIPELINE", "STARTED"]
    assert "1 + 1 / 2" in table.splitlines()[1]  # newest first: the job on both files reused a.txt
    # And a new commit runs downstream before put-file returns
    herd("put-file", "words", "master", "/c.txt", "-f", "-", input="two\n")
    assert herd("get-file", "reduce", "master", "/two").output == "4\n"
    flushed = herd("flush-commit", "words", "master", "--json").output.splitlines()
    assert [json.loads(c)["commit"]["repo"]["name"] for c in flushed] == ["map", "reduce"]


def test_inspect_job_datums_and_logs(herd, tmp_path: Path) -> None:
    herd("create-repo", "in")
    herd("put-file", "in", "master", "/x", "-f", "-", input="hello\n")
    spec = {
        "pipeline": {"name": "echo"},
        "transform": {"cmd": ["sh", "-c", "echo saw $(cat $in); cp $in /pfs/out/"]},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
    }
    herd("create-pipeline", "-f", write_spec(tmp_path, spec))
    job = json.loads(herd("list-job", "--json").output.splitlines()[0])
    job_id = job["job"]["id"]
    raw = json.loads(herd("inspect-job", job_id[:10], "--json").output)
    assert raw["data_processed"] == 1 and raw["output_commit"]["repo"]["name"] == "echo"
    assert "JOB_SUCCESS" in herd("inspect-job", job_id).output
    datums = [json.loads(line) for line in herd("list-datum", job_id, "--json").output.splitlines()]
    assert [d["state"] for d in datums] == ["SUCCESS"]
    assert "Inputs" in herd("inspect-datum", job_id, datums[0]["datum"]["id"]).output
    assert herd("get-logs", "--job", job_id).output == "saw hello\n"
    log = json.loads(herd("get-logs", "-p", "echo", "--raw").output.splitlines()[0])
    assert log["pipelineName"] == "echo" and log["message"] == "saw hello" and log["user"] is True
    herd("stop-pipeline", "echo")
    assert "paused" in herd("list-pipeline").output
    herd("start-pipeline", "echo")
    assert json.loads(herd("inspect-pipeline", "echo", "--json").output)["state"] == "PIPELINE_RUNNING"
    herd("delete-pipeline", "echo")
    assert "echo" not in herd("list-repo").output


def test_yaml_spec_from_stdin_and_update(herd) -> None:
    herd("create-repo", "in")
    herd("put-file", "in", "master", "/x", "-f", "-", input="1\n")
    spec = {"pipeline": {"name": "p"}, "transform": {"cmd": ["sh", "-c", "echo v1 > /pfs/out/v"]},
            "input": {"atom": {"repo": "in", "glob": "/"}}}
    herd("create-pipeline", "-f", "-", input=yaml.safe_dump(spec))
    spec["transform"]["cmd"] = ["sh", "-c", "echo v2 > /pfs/out/v"]
    herd("update-pipeline", "-f", "-", "--reprocess", input=yaml.safe_dump(spec))
    assert herd("get-file", "p", "master", "/v").output == "v2\n"


def test_ignored_fields_are_reported_once(herd, tmp_path: Path) -> None:
    herd("create-repo", "in")
    spec = {"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]}, "standby": True,
            "input": {"pfs": {"repo": "in", "glob": "/"}}}
    result = herd("create-pipeline", "-f", write_spec(tmp_path, spec))
    assert "ignores them: standby" in result.stderr


@pytest.mark.parametrize(
    "spec, culprit",
    [
        ({"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "nope", "glob": "/"}}},
         "nope"),
        ({"pipeline": {"name": "p/q"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "in", "glob": "/"}}},
         "pipeline.name"),
        ({"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "in", "glob": "/"}},
          "bogus": 1}, "bogus"),
        ({"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "in", "glob": ""}}},
         "glob"),
    ],
)
def test_bad_specs_fail_in_one_line_and_change_nothing(herd, tmp_path: Path, spec: dict, culprit: str) -> None:
    herd("create-repo", "in")
    result = herd("create-pipeline", "-f", write_spec(tmp_path, spec), ok=False)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and culprit in lines[0]
    assert herd("list-pipeline", "--json").output == ""
    assert herd("list-repo", "--json").output.count("\n") == 1


def test_console_script_runs_a_pipeline(tmp_path: Path) -> None:
    env = {"HERD_STORAGE": f"file://{tmp_path / 'store'}", "PATH": "/usr/bin:/bin"}

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([HERD, *args], input=input, capture_output=True, text=True, env=env, timeout=120)

    assert run("create-repo", "in").returncode == 0
    assert run("put-file", "in", "master", "/x", "-f", "-", input="abc\n").returncode == 0
    spec = {"pipeline": {"name": "up"}, "transform": {"cmd": ["sh", "-c", "tr a-z A-Z < $in > /pfs/out/x"]},
            "input": {"pfs": {"repo": "in", "glob": "/*"}}}
    assert run("create-pipeline", "-f", write_spec(tmp_path, spec)).returncode == 0
    assert run("get-file", "up", "master", "/x").stdout == "ABC\n"
    missing = run("inspect-job", "deadbeefdeadbeef")
    assert missing.returncode == 2 and missing.stderr.strip() == "error: job 'deadbeefdeadbeef' not found"


# ---- hostile specs through the CLI: one line, exit non-zero, nothing created ----------------

def _laughs_yaml() -> str:
    levels = ['  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "pipeline: {name: p}\ntransform: {cmd: [\"true\"]}\ninput: {pfs: {repo: in, glob: /}}\nmetadata:\n" \
        + "\n".join(levels) + "\n"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (_laughs_yaml(), "YAML aliases expand"),
        ("{" + '"a":[' * 50_000 + "]" * 50_000 + "}", "nested more than"),
        ("pipeline: " + "[" * 50_000 + "]" * 50_000, "nested more than"),
        ("x" * (2 << 20), "larger than"),
        (json.dumps({"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]}, "datum_tries": 10**12,
                     "input": {"pfs": {"repo": "in", "glob": "/"}}}), "datum_tries"),
        (json.dumps({"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]},
                     "input": {"pfs": {"repo": "in", "name": "x=y", "glob": "/"}}}), "input.pfs.name"),
    ],
    ids=["billion-laughs", "json-50000-deep", "yaml-50000-deep", "2MiB", "datum_tries", "input-name-with-="],
)
def test_hostile_spec_files_fail_in_one_line(herd, tmp_path: Path, text: str, needle: str) -> None:
    herd("create-repo", "in")
    path = tmp_path / "evil.yaml"
    path.write_text(text)
    result = herd("create-pipeline", "-f", str(path), ok=False)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 4 and len(lines) == 1 and needle in lines[0], result.stderr
    assert herd("list-pipeline", "--json").output == ""
    assert [json.loads(r)["repo"]["name"] for r in herd("list-repo", "--json").output.splitlines()] == ["in"]


def test_pathological_glob_does_not_hang_jobs(herd, tmp_path: Path) -> None:
    # Given a file name the old regex needed hours for, and the glob that triggered it
    herd("create-repo", "in")
    herd("put-file", "in", "master", "/" + "a" * 64, "-f", "-", input="x\n")
    spec = {"pipeline": {"name": "p"}, "transform": {"cmd": ["sh", "-c", "echo ran > /pfs/out/ran"]},
            "input": {"pfs": {"repo": "in", "glob": "/" + "**a" * 12 + "**c"}}}
    # When the pipeline is created (its first job planned) and more data arrives
    herd("create-pipeline", "-f", write_spec(tmp_path, spec))
    herd("put-file", "in", "master", "/" + "a" * 63 + "c", "-f", "-", input="y\n")
    # Then both jobs finished: the first with no datum, the second with the one matching file
    jobs = [json.loads(line) for line in herd("list-job", "--json").output.splitlines()]
    assert [j["state"] for j in jobs] == ["JOB_SUCCESS", "JOB_SUCCESS"]
    assert herd("get-file", "p", "master", "/ran").output == "ran\n"


def test_input_named_like_a_repo_with_a_dash_runs(herd, tmp_path: Path) -> None:
    # Pachyderm's tests name inputs `repo-1`: not a shell identifier, still an environment variable.
    herd("create-repo", "repo-1")
    herd("put-file", "repo-1", "master", "/x", "-f", "-", input="hello\n")
    spec = {"pipeline": {"name": "p"},
            "transform": {"cmd": ["python3", "-c", "import os, shutil; shutil.copy(os.environ['repo-1'], '/pfs/out/x')"]},
            "input": {"pfs": {"repo": "repo-1", "glob": "/*"}}}
    herd("create-pipeline", "-f", write_spec(tmp_path, spec))
    assert herd("get-file", "p", "master", "/x").output == "hello\n"
