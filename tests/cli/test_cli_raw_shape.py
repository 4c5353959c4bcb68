"""`--raw` prints pachctl 1.x's JSON (lowerCamel names, 64-bit numbers as strings) and `--json`
herd's snake_case records, on every verb that takes them, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scheduler.cli import cli
from scheduler.pachctl_json import MAP_FIELDS, pachctl_shape, pipeline_info

SPEC = {
    "pipeline": {"name": "echo"},
    "transform": {"cmd": ["sh", "-c", "echo saw $(cat $in); cp $in /pfs/out/"], "env": {"MY_VAR": "x"},
                  "accept_return_code": [3]},
    "parallelism_spec": {"constant": 1},
    "datum_tries": 2,
    "input": {"pfs": {"repo": "in", "glob": "/*", "name": "in"}},
}


@pytest.fixture(scope="module")
def herd(tmp_path_factory: pytest.TempPathFactory):
    """One store with a repo of two commits, a pipeline, its job, datums and logs."""
    store = tmp_path_factory.mktemp("raw") / "store"
    runner = CliRunner()
    env = {"HERD_STORAGE": f"file://{store}", "HERD_BROKER": None, "HERD_RUNTIME": "local"}

    def run(*args: str, input: str | None = None) -> str:
        result = runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output + result.stderr
        return result.stdout

    run("create-repo", "in", "-d", "inputs")
    run("put-file", "in", "master", "/x", "-f", "-", input="hello\n")
    spec = store.parent / "spec.json"
    spec.write_text(json.dumps(SPEC))
    run("create-pipeline", "-f", str(spec))
    run("put-file", "in", "master", "/y", "-f", "-", input="world\n")
    return run


def _ids(herd) -> dict[str, str]:
    job = json.loads(herd("list-job", "--json").splitlines()[0])
    datum = json.loads(herd("list-datum", job["job"]["id"], "--json").splitlines()[0])
    commits = [json.loads(line)["commit"]["id"] for line in herd("list-commit", "in", "--json").splitlines()]
    return {"job": job["job"]["id"], "datum": datum["datum"]["id"], "new": commits[0], "old": commits[1]}


# verb words (ids filled in) -> how --raw relates to --json: "same" (reshaped), "pipeline"
# (reshaped as PipelineInfo), "logs" (LogMessage) or "shape" (same keys; values change between runs)
VERBS: dict[str, tuple[list[str], str]] = {
    "list-repo": (["list-repo"], "same"),
    "inspect-repo": (["inspect-repo", "in"], "same"),
    "list-commit": (["list-commit", "in"], "same"),
    "inspect-commit": (["inspect-commit", "in@{new}"], "same"),
    "list-branch": (["list-branch", "in"], "same"),
    "list-file": (["list-file", "in@master:/"], "same"),
    "glob-file": (["glob-file", "in@master:/*"], "same"),
    "inspect-file": (["inspect-file", "in@master:/x"], "same"),
    "diff-file": (["diff-file", "in@{new}:/", "in@{old}:/"], "same"),
    "subscribe-commit": (["subscribe-commit", "in", "master", "-n", "2"], "same"),
    "list-pipeline": (["list-pipeline"], "pipeline"),
    "inspect-pipeline": (["inspect-pipeline", "echo"], "pipeline"),
    "list-job": (["list-job"], "same"),
    "inspect-job": (["inspect-job", "{job}"], "same"),
    "list-datum": (["list-datum", "{job}"], "same"),
    "inspect-datum": (["inspect-datum", "{job}", "{datum}"], "same"),
    "flush-commit": (["flush-commit", "in@{new}"], "same"),
    "get-logs": (["get-logs", "--job", "{job}"], "logs"),
    "garbage-collect": (["garbage-collect", "--dry-run"], "shape"),
    "status": (["status"], "shape"),
    "version": (["version"], "shape"),
}


def test_every_verb_with_raw_is_covered() -> None:
    with_raw = {name for name, command in cli.commands.items() if any(p.name == "raw" for p in command.params)}
    assert with_raw == set(VERBS)


def _documents(text: str) -> list[Any]:
    """An inspect verb's one indented document, or a list verb's JSON lines."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("{\n"):
        return [json.loads(text)]
    return [json.loads(line) for line in text.splitlines()]


def _skeleton(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _skeleton(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_skeleton(item) for item in value]
    return type(value).__name__


def _names_and_numbers(value: Any, in_map: bool = False) -> None:
    """No snake_case name outside a map, no integer outside a 32-bit field, anywhere."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert in_map or "_" not in key, key
            if key not in ("internalPort", "externalPort"):
                assert isinstance(item, bool) or not isinstance(item, int), (key, item)
            _names_and_numbers(item, key in MAP_FIELDS and isinstance(item, dict))
    elif isinstance(value, list):
        for item in value:
            _names_and_numbers(item)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_raw_is_pachctls_shape_of_the_json_record(herd, verb: str) -> None:
    words, relation = VERBS[verb]
    words = [word.format(**_ids(herd)) for word in words]
    snake = _documents(herd(*words, "--json"))
    raw = _documents(herd(*words, "--raw"))
    assert snake and len(raw) == len(snake)
    for document in raw:
        _names_and_numbers(document)
    if relation == "same":
        assert raw == [pachctl_shape(d) for d in snake]
    elif relation == "pipeline":
        assert raw == [pachctl_shape(pipeline_info(d)) for d in snake]
    elif relation == "logs":
        assert [(r["pipelineName"], r["jobId"], r["datumId"], r["workerId"], r["message"], r["attempt"])
                for r in raw] == [(s["pipeline"], s["job"], s["datum"], s["worker"], s["message"], str(s["attempt"]))
                                  for s in snake]
    else:
        assert [_skeleton(r) for r in raw] == [_skeleton(pachctl_shape(s)) for s in snake]


def test_the_names_scripts_read_from_pachctl_1x(herd) -> None:
    ids = _ids(herd)
    repo = json.loads(herd("inspect-repo", "in", "--raw"))
    assert repo["repo"] == {"name": "in"} and repo["sizeBytes"] == "12" and repo["description"] == "inputs"
    commit = json.loads(herd("inspect-commit", f"in@{ids['new']}", "--raw"))
    assert commit["parentCommit"] == {"repo": {"name": "in"}, "id": ids["old"]} and commit["sizeBytes"] == "12"
    job = json.loads(herd("inspect-job", ids["job"], "--raw"))
    assert (job["dataProcessed"], job["dataSkipped"], job["dataTotal"], job["restart"]) == ("1", "1", "2", "0")
    assert job["state"] == "JOB_SUCCESS" and job["outputCommit"]["repo"] == {"name": "echo"}
    assert job["stats"]["downloadBytes"] == "6" and job["stats"]["processTime"].endswith("s")
    pipeline = json.loads(herd("inspect-pipeline", "echo", "--raw"))
    assert pipeline["pipeline"] == {"name": "echo"} and pipeline["version"] == "1"
    assert pipeline["parallelismSpec"] == {"constant": "1"} and pipeline["datumTries"] == "2"
    assert pipeline["transform"]["env"] == {"MY_VAR": "x"} and pipeline["transform"]["acceptReturnCode"] == ["3"]
    assert pipeline["input"]["pfs"] == {"repo": "in", "glob": "/*", "name": "in"}
    file = json.loads(herd("inspect-file", "in@master:/x", "--raw"))
    assert file["fileType"] == "FILE" and file["sizeBytes"] == "6" and file["file"]["path"] == "/x"


def test_a_spec_printed_lower_camel_with_string_numbers_creates_the_same_pipeline(herd, tmp_path: Path) -> None:
    raw = json.loads(herd("inspect-pipeline", "echo", "--raw"))
    spec = {key: raw[key] for key in ("transform", "parallelismSpec", "datumTries", "input")}
    spec["pipeline"] = {"name": "echo2"}
    path = tmp_path / "echo2.json"
    path.write_text(json.dumps(spec))
    herd("create-pipeline", "-f", str(path))
    copy = json.loads(herd("inspect-pipeline", "echo2", "--raw"))
    assert {key: copy[key] for key in spec if key != "pipeline"} == {key: raw[key] for key in spec if key != "pipeline"}
    assert herd("get-file", "echo2@master:/y") == "world\n"
