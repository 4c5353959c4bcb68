"""join and group pipelines, and Pachyderm 1.4's fruit stand (the `inputs` array), run through
the real CLI entry point on the embedded default with the local runtime."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from scheduler.cli import cli
from scheduler.spec import OLD_INPUTS_NOTE

FRUIT_STAND = Path(__file__).parent / "fruit_stand"


@pytest.fixture
def herd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("HERD_STORAGE", f"file://{tmp_path / 'store'}")
    monkeypatch.delenv("HERD_BROKER", raising=False)
    runner = CliRunner()

    def run(*args: str, input: str | None = None, ok: bool = True) -> Result:
        result = runner.invoke(cli, list(args), input=input, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output + result.stderr
        return result

    return run


def put(herd: Any, repo: str, files: dict[str, str]) -> None:
    if repo not in herd("list-repo").output:
        herd("create-repo", repo)
    for path, text in files.items():
        herd("put-file", repo, "master", path, "-f", "-", input=text)


def create(herd: Any, tmp_path: Path, spec: dict[str, Any]) -> Result:
    path = tmp_path / f"{spec['pipeline']['name']}.json"
    path.write_text(json.dumps(spec))
    result: Result = herd("create-pipeline", "-f", str(path))
    return result


def outputs(herd: Any, repo: str) -> dict[str, str]:
    listed = json.loads("[" + ",".join(herd("list-file", repo, "master", "/", "--json").output.splitlines()) + "]")
    names = [item["file"]["path"] for item in listed]
    return {name: herd("get-file", repo, "master", name).output for name in names}


def last_job(herd: Any, pipeline: str) -> dict[str, Any]:
    jobs = [json.loads(line) for line in herd("list-job", "-p", pipeline, "--json").output.splitlines()]
    newest: dict[str, Any] = jobs[0]  # newest first
    return newest


# The transform names each output after the join key, from the 2.x variable, and writes what
# /pfs held for it: a datum holding one reading and its sensor's label.
JOIN_CMD = ("{ cat $readings; [ -z \"${labels:-}\" ] || cat $labels; } "
            ">> /pfs/out/$PACH_DATUM_readings_JOIN_ON")


def join_spec(outer: bool) -> dict[str, Any]:
    return {
        "pipeline": {"name": "joined"},
        "transform": {"cmd": ["sh", "-c", JOIN_CMD]},
        "input": {"join": [
            {"pfs": {"repo": "readings", "glob": "/(*)-*.txt", "join_on": "$1", "outer_join": outer}},
            {"pfs": {"repo": "labels", "glob": "/(*).csv", "join_on": "$1"}},
        ]},
    }


@pytest.mark.parametrize("outer", [False, True], ids=["inner", "outer"])
def test_join_on_a_capture_group(herd: Any, tmp_path: Path, outer: bool) -> None:
    # Given readings per sensor and month, and labels per sensor (s3 has no label, s4 no readings)
    put(herd, "readings", {"/s1-jan.txt": "s1 jan\n", "/s1-feb.txt": "s1 feb\n", "/s3-jan.txt": "s3 jan\n"})
    put(herd, "labels", {"/s1.csv": "label one\n", "/s4.csv": "label four\n"})
    # When a pipeline joins them on the sensor id
    create(herd, tmp_path, join_spec(outer))
    # Then each reading of s1 ran with its label (datums in path order: feb before jan); s3 only
    # when readings is an outer join, alone; s4's label never
    expected = {"/s1": "s1 feb\nlabel one\ns1 jan\nlabel one\n"}
    if outer:
        expected["/s3"] = "s3 jan\n"
    assert outputs(herd, "joined") == expected
    assert last_job(herd, "joined")["data_total"] == len(expected) + 1


def test_join_skips_unchanged_keys_on_the_next_commit(herd: Any, tmp_path: Path) -> None:
    # Given an inner join that ran on s1's two readings
    put(herd, "readings", {"/s1-jan.txt": "s1 jan\n", "/s1-feb.txt": "s1 feb\n", "/s2-jan.txt": "s2 jan\n"})
    put(herd, "labels", {"/s1.csv": "label one\n"})
    create(herd, tmp_path, join_spec(outer=False))
    # When s2's label arrives
    put(herd, "labels", {"/s2.csv": "label two\n"})
    # Then only s2's datum runs: s1's keep their ids and hashes and are skipped
    job = last_job(herd, "joined")
    assert (job["data_processed"], job["data_skipped"], job["data_total"]) == (1, 2, 3)
    assert outputs(herd, "joined") == {"/s1": "s1 feb\nlabel one\ns1 jan\nlabel one\n", "/s2": "s2 jan\nlabel two\n"}


def test_group_by_a_capture_group(herd: Any, tmp_path: Path) -> None:
    # Given log files of two services, and a shared file matched by two globs of the group
    put(herd, "logs", {"/web-1.log": "w1\n", "/web-2.log": "w2\n", "/db-1.log": "d1\n"})
    # When a pipeline groups them by service
    create(herd, tmp_path, {
        "pipeline": {"name": "grouped"},
        "transform": {"cmd": ["sh", "-c",
                              "cat $(find /pfs/logs -type f | sort) > /pfs/out/$PACH_DATUM_logs_GROUP_BY"]},
        "input": {"group": [{"pfs": {"repo": "logs", "glob": "/(*)-*.log", "group_by": "$1"}}]},
    })
    # Then one datum per service saw every file of that service, and only those
    assert outputs(herd, "grouped") == {"/db": "d1\n", "/web": "w1\nw2\n"}
    assert last_job(herd, "grouped")["data_total"] == 2
    # And a new web log reruns the web group only
    put(herd, "logs", {"/web-3.log": "w3\n"})
    job = last_job(herd, "grouped")
    assert (job["data_processed"], job["data_skipped"]) == (1, 1)
    assert outputs(herd, "grouped")["/web"] == "w1\nw2\nw3\n"
    assert "(Group: logs:/(*)-*.log)" in herd("list-pipeline").output


def test_a_join_refused_at_create_changes_nothing(herd: Any, tmp_path: Path) -> None:
    spec = join_spec(outer=False)
    del spec["input"]["join"][1]["pfs"]["join_on"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec))
    result = herd("create-pipeline", "-f", str(path), ok=False)
    assert result.exit_code != 0 and "needs 'join_on'" in result.stderr and "Traceback" not in result.output
    assert "joined" not in herd("list-pipeline").output


def _sh_has_double_brackets() -> bool:
    return subprocess.run(["sh", "-c", "[[ -e / ]]"], capture_output=True).returncode == 0


def test_fruit_stand_of_pachyderm_1_4_with_the_inputs_array(herd: Any) -> None:
    # Given Pachyderm 1.4.8's fruit stand run.sh: the first sales commit, then both pipelines
    herd("create-repo", "data")
    herd("put-file", "data", "master", "sales", "-f", str(FRUIT_STAND / "set1.txt"))
    created = herd("create-pipeline", "-f", str(FRUIT_STAND / "pipeline.json"))
    # Then herd notes, once per pipeline, that `inputs` is the old form it reads as a cross
    assert created.stderr.count(OLD_INPUTS_NOTE) == 2
    # When the second set is added to the same file (1.x's put-file appended)
    herd("put-file", "data", "master", "sales", "-a", "-f", str(FRUIT_STAND / "set2.txt"))
    # Then filter holds every amount per fruit, in file order
    sales = [line.split("\t") for line in ((FRUIT_STAND / "set1.txt").read_text()
                                           + (FRUIT_STAND / "set2.txt").read_text()).splitlines()]
    fruits = ("apple", "orange", "banana")
    assert outputs(herd, "filter") == {f"/{f}": "".join(f"{n}\n" for name, n in sales if f in name) for f in fruits}
    # And sum totals them: with a shell that has `[[` (bash); a POSIX sh (dash, as in Pachyderm's
    # ubuntu image) skips every fruit at `[[ ... ]] || continue`, and sum's output is empty
    totals = {f"/{f}": f"{sum(int(n) for name, n in sales if f in name)}\n" for f in fruits}
    assert outputs(herd, "sum") == (totals if _sh_has_double_brackets() else {})
    assert {j["state"] for p in ("filter", "sum") for j in [last_job(herd, p)]} == {"JOB_SUCCESS"}
    assert "(data:/*)" in herd("list-pipeline").output
    # And the stored spec re-reads without a new note (the note is for the spec as written)
    assert OLD_INPUTS_NOTE not in herd("list-job").stderr
