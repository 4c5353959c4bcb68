"""pachctl 1.x forms of the pps verbs (issue 14): specs from stdin and URLs, edit-pipeline,
flush-commit over several commits with -r, list-job of a deleted pipeline, inspect-job --block,
and diff-file in pachctl's argument order. Real CLI, embedded scheduler, local folder store."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from scheduler.cli import cli
from tests.cli.test_cli_pps import herd, write_spec  # noqa: F401 - the fixture
from tests.fixtures.s3 import fresh_bucket


def copy_spec(name: str, repo: str, word: str = "") -> dict:
    return {
        "pipeline": {"name": name},
        "transform": {"cmd": ["sh", "-c", f"for f in /pfs/{repo}/*; do cp $f /pfs/out/; done{word}"]},
        "input": {"pfs": {"repo": repo, "glob": "/"}},
    }


def version(herd, name: str) -> int:
    return int(json.loads(herd("inspect-pipeline", name, "--json").output)["version"])


def one_error(result) -> str:
    assert result.exit_code not in (0, 1), result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# ---- create/update-pipeline: stdin without -f, URLs ----------------------------------------------


def test_create_and_update_pipeline_from_stdin(herd) -> None:
    herd("create-repo", "in")
    herd("put-file", "in", "master", "/a", input="A")
    herd("create-pipeline", input=json.dumps(copy_spec("cp", "in")))  # no -f: the spec is read from stdin
    assert herd("get-file", "cp", "master", "/a").output == "A"
    herd("update-pipeline", "-f", "-", input=json.dumps(copy_spec("cp", "in", "; echo v2 > /pfs/out/v")))
    assert version(herd, "cp") == 2
    herd("update-pipeline", input=json.dumps(copy_spec("cp", "in", "; echo v3 > /pfs/out/v")))
    assert version(herd, "cp") == 3
    result = herd("create-pipeline", input="{not json", ok=False)
    assert "stdin" in one_error(result)


def test_create_pipeline_from_a_file_url(herd, tmp_path: Path) -> None:
    herd("create-repo", "in")
    spec = write_spec(tmp_path, copy_spec("cp", "in"), name="my spec.json")
    herd("create-pipeline", "-f", Path(spec).as_uri())  # file:///.../my%20spec.json
    assert version(herd, "cp") == 1
    result = herd("create-pipeline", "-f", f"file://{tmp_path}/missing.json", ok=False)
    assert "missing.json" in one_error(result)


@pytest.mark.s3
def test_create_and_update_pipeline_from_s3(moto_server: object, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from storage.s3 import S3ObjectStore

    bucket = fresh_bucket()
    specs = S3ObjectStore(bucket, "", str(moto_server))
    specs.put("specs/cp.json", json.dumps(copy_spec("cp", "in")).encode())
    specs.put("specs/cp2.yaml", json.dumps(copy_spec("cp", "in", "; true")).encode())
    monkeypatch.setenv("HERD_STORAGE", f"file://{tmp_path / 'store'}")
    monkeypatch.setenv("HERD_S3_ENDPOINT_URL", str(moto_server))
    monkeypatch.delenv("HERD_BROKER", raising=False)
    runner = CliRunner()
    for args in (["create-repo", "in"], ["create-pipeline", "-f", f"s3://{bucket}/specs/cp.json"],
                 ["update-pipeline", "-f", f"s3://{bucket}/specs/cp2.yaml"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    raw = json.loads(runner.invoke(cli, ["inspect-pipeline", "cp", "--json"]).output)
    assert raw["version"] == 2
    missing = runner.invoke(cli, ["create-pipeline", "-f", f"s3://{bucket}/specs/nope.json"])
    assert f"s3://{bucket}/specs/nope.json" in one_error(missing)


# ---- edit-pipeline ---------------------------------------------------------------------------------


def editor(script: str) -> str:
    """An --editor command: a Python one-liner given the file name (click appends it, quoted)."""
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"


REWRITE = "import sys, json; p = sys.argv[1]; s = json.load(open(p)); {change}; json.dump(s, open(p, 'w'))"


def test_edit_pipeline_updates_with_the_saved_spec(herd) -> None:
    herd("create-repo", "in")
    herd("put-file", "in", "master", "/a", input="A")
    herd("create-pipeline", input=json.dumps(copy_spec("cp", "in")))
    change = REWRITE.format(change="s['transform']['cmd'][2] += '; echo edited > /pfs/out/e'")
    herd("edit-pipeline", "cp", "--editor", editor(change))
    assert version(herd, "cp") == 2
    assert "edited" in json.loads(herd("inspect-pipeline", "cp", "--json").output)["spec"]["transform"]["cmd"][2]
    herd("put-file", "in", "master", "/b", input="B")
    assert herd("get-file", "cp", "master", "/e").output == "edited\n"
    # YAML works the same way; an editor that changes nothing updates nothing
    unchanged = herd("edit-pipeline", "cp", "-o", "yaml", "--editor", "true")
    assert "unchanged" in unchanged.output and version(herd, "cp") == 2


@pytest.mark.parametrize(("script", "why"), [
    ("open(__import__('sys').argv[1], 'w').write('{\"pipeline\": ')", "cp"),
    (REWRITE.format(change="s['pipeline']['name'] = 'other'"), "only updates 'cp'"),
    (REWRITE.format(change="s['input']['pfs']['glob'] = '['"), "glob"),
    (REWRITE.format(change="s['transform'] = 7"), "transform"),
    ("open(__import__('sys').argv[1], 'a').write('{\"pipeline\": {\"name\": \"two\"}}')", "one pipeline spec"),
    ("raise SystemExit(3)", "editing failed"),
])
def test_a_bad_edit_is_refused_and_changes_nothing(herd, tmp_path: Path, script: str, why: str) -> None:
    herd("create-repo", "in")
    herd("create-pipeline", input=json.dumps(copy_spec("cp", "in")))
    before = herd("inspect-pipeline", "cp", "--json").output
    result = herd("edit-pipeline", "cp", "--editor", editor(script), ok=False)
    assert result.exit_code != 0
    assert why.lower() in result.output.lower()
    assert "Traceback" not in result.output
    assert herd("inspect-pipeline", "cp", "--json").output == before


def test_edit_pipeline_of_a_missing_pipeline(herd) -> None:
    result = herd("edit-pipeline", "nope", "--editor", "true", ok=False)
    assert "nope" in one_error(result)


# ---- list-job, flush-commit, inspect-job --block --------------------------------------------------


def test_list_job_of_a_deleted_pipeline_is_empty(herd) -> None:
    herd("create-repo", "in")
    herd("put-file", "in", "master", "/a", input="A")
    herd("create-pipeline", input=json.dumps(copy_spec("cp", "in")))
    assert len(herd("list-job", "-p", "cp", "--json").output.splitlines()) == 1
    herd("delete-pipeline", "cp")
    assert herd("list-job", "-p", "cp", "--json").output == ""
    assert herd("list-job", "-p", "cp").output.splitlines()[0].split()[:2] == ["ID", "PIPELINE"]
    assert herd("list-job", "-p", "never-was").output.count("\n") == 1  # the header alone


def test_flush_commit_over_several_commits_and_repos(herd) -> None:
    for repo in ("x", "y"):
        herd("create-repo", repo)
    herd("create-pipeline", input=json.dumps(copy_spec("px", "x")))
    herd("create-pipeline", input=json.dumps(copy_spec("py", "y")))
    herd("create-pipeline", input=json.dumps(copy_spec("pz", "px")))
    herd("put-file", "x", "master", "/a", input="A")
    herd("put-file", "y", "master", "/b", input="B")

    def repos(*args: str) -> list[str]:
        out = herd("flush-commit", *args, "--json").output.splitlines()
        return [json.loads(line)["commit"]["repo"]["name"] for line in out]

    assert repos("x@master", "y@master") == ["px", "pz", "py"]
    assert repos("x/master", "y@master", "-r", "pz", "-r", "py") == ["pz", "py"]
    assert repos("x", "master") == ["px", "pz"]  # herd's two-word form still works
    table = herd("flush-commit", "x@master", "y@master", "-r", "py").output.splitlines()
    assert len(table) == 2 and table[1].startswith("py ")
    assert "nope" in one_error(herd("flush-commit", "x@master", "-r", "nope", ok=False))
    assert herd("flush-commit", "x@master", "y", ok=False).exit_code == 64


def test_inspect_job_block(herd) -> None:
    herd("create-repo", "in")
    herd("create-pipeline", input=json.dumps(copy_spec("cp", "in")))
    herd("put-file", "in", "master", "/a", input="A")
    job = json.loads(herd("list-job", "--json").output.splitlines()[0])["job"]["id"]
    raw = json.loads(herd("inspect-job", job, "--block", "--json").output)
    assert raw["state"] == "JOB_SUCCESS"
    assert "JOB_SUCCESS" in herd("inspect-job", "-b", job[:8]).output


# ---- diff-file in pachctl's order ----------------------------------------------------------------


def test_diff_file_in_pachctl_order(herd) -> None:
    herd("create-repo", "a")
    herd("create-repo", "b")
    herd("put-file", "a", "master", "/d/same", input="1")
    herd("put-file", "a", "master", "/d/mod", input="1")
    herd("put-file", "a", "master", "/d/mod", input="2")
    herd("put-file", "b", "master", "/e/same", input="1")
    herd("put-file", "b", "master", "/e/mod", input="1")
    herd("put-file", "b", "master", "/e/gone", input="1")

    def raw(*args: str) -> dict:
        return json.loads(herd("diff-file", *args, "--json").output)

    # new-repo new-commit new-path: against the parent, at that path
    assert raw("a", "master", "/d") == {"added": [], "modified": ["/d/mod"], "deleted": []}
    # ... old-repo old-commit old-path: another repo and path, named by the new side's paths
    assert raw("a", "master", "/d", "b", "master", "/e") == {
        "added": [], "modified": ["/d/mod"], "deleted": ["/d/gone"]}
    assert raw("a@master:/d", "b@master:/e") == raw("a", "master", "/d", "b", "master", "/e")
    assert raw("a", "master", "/d/mod", "b", "master", "/e/mod") == {
        "added": [], "modified": ["/d/mod"], "deleted": []}
    assert raw("a", "master", "/d/same", "b", "master", "/e/same") == {"added": [], "modified": [], "deleted": []}
    assert herd("diff-file", "a", "master", "/d", "b", "master", ok=False).exit_code == 64
    assert "/nope" in one_error(herd("diff-file", "a", "master", "/d", "b", "master", "/nope", ok=False))
