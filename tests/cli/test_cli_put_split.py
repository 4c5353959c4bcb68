"""put-file --split line|json, and put-file from file:// and s3:// URLs (with -r: an S3 prefix),
through the real CLI on a local folder store; S3 sources on moto's server over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from scheduler.cli import cli
from tests.cli.test_cli_pfs import Herd, fails, lines, snapshot
from tests.fixtures.s3 import fresh_bucket

CHUNK0, CHUNK1, CHUNK2, CHUNK3 = (f"{i:016x}" for i in range(4))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def herd(store: Path, work: Path) -> Herd:
    runner = CliRunner(env={"HERD_STORAGE": f"file://{store}"})

    def run(*args: str, input: bytes | str | None = None, code: int = 0) -> Result:
        result = runner.invoke(cli, list(args), input=input)
        assert result.exit_code == code, (result.output, result.exception)
        return result

    herd_run: Herd = run
    herd_run("create-repo", "data")
    return herd_run


def names(herd: Herd, path: str) -> list[str]:
    return [json.loads(line)["file"]["path"] for line in lines(herd("list-file", "data", "master", path, "--json"))]


def get(herd: Herd, path: str) -> bytes:
    return herd("get-file", "data", "master", path).stdout_bytes


def test_split_line_by_datums_then_append_continues(herd: Herd, work: Path) -> None:
    (work / "l.txt").write_bytes(b"a\nb\nc\nd\ne\n")
    herd("put-file", "data", "master", "/lines", "-f", "l.txt", "--split", "line", "--target-file-datums", "2")
    assert names(herd, "/lines") == [f"/lines/{CHUNK0}", f"/lines/{CHUNK1}", f"/lines/{CHUNK2}"]
    assert [get(herd, f"/lines/{c}") for c in (CHUNK0, CHUNK1, CHUNK2)] == [b"a\nb\n", b"c\nd\n", b"e\n"]
    # Appending continues the numbering, and the 1.9 form data@master:/path works too
    herd("put-file", "data@master:/lines", "-a", "--split", "line", input=b"f\ng")
    assert names(herd, "/lines")[3:] == [f"/lines/{CHUNK3}", f"/lines/{4:016x}"]
    assert get(herd, f"/lines/{4:016x}") == b"g"
    # Without -a the directory is replaced, numbering from 0
    herd("put-file", "data", "master", "/lines", "--split", "line", input=b"z\n")
    assert names(herd, "/lines") == [f"/lines/{CHUNK0}"]


def test_split_line_by_bytes_never_cuts_a_line(herd: Herd) -> None:
    herd("put-file", "data", "master", "/b", "--split", "line", "--target-file-bytes", "4",
         input=b"aaaaaa\nb\nc\nd\n\n")
    got = [get(herd, path) for path in names(herd, "/b")]
    assert got == [b"aaaaaa\n", b"b\nc\n", b"d\n\n"]


def test_split_json_values(herd: Herd, work: Path) -> None:
    (work / "v.json").write_text('{"a": 1}\n{"b": [1, 2]}\n  "s" 3\n')
    herd("put-file", "data", "master", "/j", "-f", f"file://{work / 'v.json'}", "--split", "json")
    got = [get(herd, path) for path in names(herd, "/j")]
    assert got == [b'{"a": 1}', b'{"b": [1, 2]}', b'"s"', b"3"]
    herd("put-file", "data", "master", "/j", "-a", "--split", "json", "--target-file-datums", "2",
         input=b"[1] [2] [3]")
    assert names(herd, "/j")[4:] == [f"/j/{4:016x}", f"/j/{5:016x}"]
    assert get(herd, f"/j/{4:016x}") == b"[1][2]"


def test_bad_json_names_the_line_and_changes_nothing(herd: Herd, store: Path, work: Path) -> None:
    herd("put-file", "data", "master", "/j", "--split", "json", input=b"1 2")
    before = snapshot(store)
    (work / "bad.json").write_text('{"a": 1}\n{"b": 2}\n{"c": }\n{"d": 4}\n')
    message = fails(herd, 4, "put-file", "data", "master", "/j", "-a", "-f", "bad.json", "--split", "json")
    assert "'bad.json' line 3" in message and "not valid JSON" in message
    message = fails(herd, 4, "put-file", "data", "master", "/j", "--split", "json", input=b'{"a": [1,\n2')
    assert "'stdin' line 1" in message and "ends inside" in message
    assert snapshot(store) == before


def test_split_refusals(herd: Herd, store: Path) -> None:
    herd("put-file", "data", "master", "/plain/x.txt", input=b"x")
    before = snapshot(store)
    assert "not a split chunk" in fails(herd, 4, "put-file", "data", "master", "/plain", "-a", "--split", "line",
                                        input=b"a\n")
    assert "need --split" in fails(herd, 4, "put-file", "data", "master", "/p", "--target-file-datums", "2",
                                   input=b"a\n")
    result = herd("put-file", "data", "master", "/p", "--split", "csv", input=b"a\n", code=64)
    assert "csv" in result.output
    result = herd("put-file", "data", "master", "/p", "--split", "line", "--target-file-bytes", "-1",
                  input=b"a\n", code=64)
    assert snapshot(store) == before


def test_put_file_from_file_urls(herd: Herd, work: Path) -> None:
    (work / "tree" / "sub").mkdir(parents=True)
    (work / "tree" / "a.txt").write_bytes(b"a")
    (work / "tree" / "sub" / "b.txt").write_bytes(b"bb")
    herd("put-file", "data", "master", "/one.txt", "-f", f"file://{work / 'tree' / 'a.txt'}")
    herd("put-file", "data", "master", "/t", "-r", "-f", f"file://{work / 'tree'}")
    assert get(herd, "/one.txt") == b"a"
    assert names(herd, "/t") == ["/t/a.txt", "/t/sub"]
    assert get(herd, "/t/sub/b.txt") == b"bb"
    assert "not found" in fails(herd, 2, "put-file", "data", "master", "/x", "-f", f"file://{work / 'nope'}")
    assert "file:///absolute/path" in fails(herd, 4, "put-file", "data", "master", "/x", "-f", "file://host/x")


@pytest.mark.s3
def test_put_file_from_s3_objects_and_prefixes(moto_server: object, store: Path, work: Path) -> None:
    from storage.s3 import S3ObjectStore

    bucket = fresh_bucket()
    source = S3ObjectStore(bucket, "", str(moto_server))
    for key, body in (("in/a.csv", b"1\n2\n3\n"), ("in/deep/b.csv", b"b"), ("inside/c", b"c")):
        source.put(key, body)
    source._client.put_object(Bucket=bucket, Key="in/dir/", Body=b"")  # a console's "folder" marker
    runner = CliRunner(env={"HERD_STORAGE": f"file://{store}", "HERD_S3_ENDPOINT_URL": str(moto_server)})

    def herd(*args: str, code: int = 0) -> Result:
        result = runner.invoke(cli, list(args))
        assert result.exit_code == code, (result.output, result.exception)
        return result

    herd("create-repo", "data")
    # One object by URL; a prefix with -r: every object below it, named by its key below the prefix
    herd("put-file", "data", "master", "/one.csv", "-f", f"s3://{bucket}/in/a.csv")
    herd("put-file", "data", "master", "/all", "-r", "-f", f"s3://{bucket}/in")
    herd("put-file", "data", "master", "-r", "-f", f"s3://{bucket}/in/deep")
    # An S3 object split into chunks
    herd("put-file", "data", "master", "/split", "-f", f"s3://{bucket}/in/a.csv", "--split", "line",
         "--target-file-datums", "2")
    listed = [json.loads(line)["file"]["path"] for line in
              herd("glob-file", "data", "master", "/**", "--json").stdout.splitlines()]
    files = {p for p in listed if herd("inspect-file", "data", "master", p, "--json").stdout.count('"FILE"')}
    assert files == {"/one.csv", "/all/a.csv", "/all/deep/b.csv", "/in/deep/b.csv",
                     f"/split/{CHUNK0}", f"/split/{CHUNK1}"}  # not inside/c, not the dir/ marker
    assert herd("get-file", "data", "master", "/all/deep/b.csv").stdout_bytes == b"b"
    assert herd("get-file", "data", "master", f"/split/{CHUNK1}").stdout_bytes == b"3\n"
    # A prefix with nothing below it, or an object that is not there: the URL is named
    result = herd("put-file", "data", "master", "/x", "-r", "-f", f"s3://{bucket}/nothing", code=2)
    assert f"s3://{bucket}/nothing" in result.stderr
    result = herd("put-file", "data", "master", "/x", "-f", f"s3://{bucket}/in/missing", code=2)
    assert f"s3://{bucket}/in/missing" in result.stderr


@pytest.mark.parametrize("failpoint", ["commit.before_manifest", "open-commit.before_update"])
def test_a_split_killed_before_its_commit_leaves_nothing(failpoint: str, store: Path, work: Path) -> None:
    import os
    import subprocess

    herd_bin = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "herd"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_"))}
    env.update(HERD_STORAGE=f"file://{store}", HERD_RUNTIME="local")

    def run(*args: str, fail: str | None = None, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        extra = {"HERD_FAILPOINTS": fail} if fail else {}
        return subprocess.run([str(herd_bin), *args], env={**env, **extra}, cwd=work, input=data,
                              capture_output=True, timeout=120)

    assert run("create-repo", "data").returncode == 0
    ref = "master"
    if failpoint.startswith("open-commit"):
        ref = run("start-commit", "data", "master").stdout.decode().strip()
    killed = run("put-file", "data", ref, "/s", "--split", "line", fail=failpoint, data=b"a\nb\n")
    assert killed.returncode == 137
    # The next command finds no chunk of the killed put, and the same put then goes through
    assert run("put-file", "data", ref, "/s", "-a", "--split", "line", data=b"c\n").returncode == 0
    if ref != "master":
        assert run("finish-commit", "data", ref).returncode == 0
    listed = run("list-file", "data", "master", "/s", "--json").stdout.decode().splitlines()
    assert [json.loads(line)["file"]["path"] for line in listed] == [f"/s/{CHUNK0}"]
