"""Pipelines, jobs, datums, logs and flush-commit through `herd serve`: the same output and
errors as on storage directly, the waits streamed, and the API refusing what an attacker sends."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fixtures.redis import redis_factory, redis_server  # noqa: F401 - fixtures
from tests.fixtures.server import HerdServer, Run

COPY = {"cmd": ["sh", "-c", "for f in /pfs/in/*; do echo saw $(basename $f); cp $f /pfs/out/; done"]}


def write_spec(tmp_path: Path, *specs: dict, name: str = "spec.json") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(s, indent=2) for s in specs))
    return str(path)


def stage(name: str, repo: str, cmd: list[str] | None = None) -> dict:
    return {
        "pipeline": {"name": name},
        "transform": {"cmd": cmd or ["sh", "-c", f"for f in /pfs/{repo}/*; do echo saw $(basename $f); "
                                                 f"cp $f /pfs/out/$(basename $f); done"]},
        "input": {"pfs": {"repo": repo, "glob": "/*"}},
    }


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def two_stages(remote: Run, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, str, str]:
    """repo -> first -> second, made through the server, one file put (its jobs ran before put-file returned)."""
    tag = request.node.name.removeprefix("test_")[:20].replace("_", "-")
    repo, first, second = f"{tag}-in", f"{tag}-a", f"{tag}-b"
    remote("create-repo", repo)
    remote("create-pipeline", "-f", write_spec(tmp_path, stage(first, repo), stage(second, first)))
    remote("put-file", repo, "master", "/x", "-f", "-", input="hello\n")
    return repo, first, second


def test_a_two_stage_pipeline_runs_through_the_server(remote: Run, local: Run, two_stages, tmp_path: Path) -> None:
    repo, first, second = two_stages
    # embedded default: both stages ran before put-file returned
    assert remote("get-file", second, "master", "/x").stdout == "hello\n"
    jobs = lines(remote("list-job", "--json").stdout)
    assert {j["pipeline"]["name"] for j in jobs} >= {first, second}
    for verb in (("list-job", "--json"), ("list-job", "-p", first, "--raw"), ("list-job", "--state", "success", "--json"),
                 ("list-pipeline", "--json"), ("list-pipeline", "--raw"), ("inspect-pipeline", second, "--raw")):
        assert remote(*verb).stdout == local(*verb).stdout, verb
    assert remote("list-job", "--state", "failure", "--json").stdout == ""
    table = remote("list-pipeline").stdout.splitlines()
    assert table[0].split()[:2] == ["NAME", "VERSION"] and any(row.startswith(second) for row in table)
    assert "success" in remote("list-pipeline").stdout.lower()
    assert not (tmp_path / "not-used").exists()  # the client's own HERD_STORAGE was never opened


def test_jobs_and_datums_print_what_they_print_locally(remote: Run, local: Run, two_stages) -> None:
    _, first, _ = two_stages
    job_id = lines(remote("list-job", "-p", first, "--json").stdout)[0]["job"]["id"]
    for verb in (("inspect-job", job_id, "--json"), ("inspect-job", job_id[:10], "--raw"),
                 ("inspect-job", job_id, "--block", "--json"), ("list-datum", job_id, "--json"),
                 ("list-datum", job_id, "--raw")):
        assert remote(*verb).stdout == local(*verb).stdout, verb
    assert "JOB_SUCCESS" in remote("inspect-job", job_id, "--block").stdout
    datum = lines(remote("list-datum", job_id, "--json").stdout)[0]["datum"]["id"]
    for verb in (("inspect-datum", job_id, datum, "--json"), ("inspect-datum", job_id, "/x", "--raw")):
        assert remote(*verb).stdout == local(*verb).stdout, verb
    assert "Inputs" in remote("inspect-datum", job_id, datum).stdout
    # a finished datum is not restarted, with the same refusal as locally
    assert remote("restart-datum", job_id, datum, code=5).stderr == local("restart-datum", job_id, datum, code=5).stderr


def test_logs_and_follow_on_a_finished_job(remote: Run, local: Run, two_stages) -> None:
    _, first, second = two_stages
    job_id = lines(remote("list-job", "-p", first, "--json").stdout)[0]["job"]["id"]
    assert remote("get-logs", "--job", job_id).stdout == "saw x\n"
    for verb in (("get-logs", "--job", job_id, "--json"), ("get-logs", "-p", second, "--raw"),
                 ("get-logs", "--job", job_id, "--datum", "/x"), ("get-logs", "-p", first, "--tail", "0"),
                 ("get-logs", "--job", job_id, "--inputs", "/x,/nothing"), ("get-logs", "--json")):
        assert remote(*verb).stdout == local(*verb).stdout, verb
    # -f on a job that has ended prints its lines and returns
    assert remote("get-logs", "--job", job_id, "-f").stdout == "saw x\n"


def test_flush_commit_waits_for_every_stage(remote: Run, local: Run, two_stages) -> None:
    repo, first, second = two_stages
    flushed = lines(remote("flush-commit", f"{repo}@master", "--json").stdout)
    assert [row["commit"]["repo"]["name"] for row in flushed] == [first, second]
    assert remote("flush-commit", f"{repo}@master", "--raw").stdout == local("flush-commit", f"{repo}@master", "--raw").stdout
    only = lines(remote("flush-commit", repo, "master", "-r", second, "--json", "--timeout", "60").stdout)
    assert [row["commit"]["repo"]["name"] for row in only] == [second]
    table = remote("flush-commit", f"{repo}@master", f"{first}@master").stdout.splitlines()
    assert table[0].split()[0] == "REPO" and len(table) == 3  # each job once


def test_stop_start_and_update_with_reprocess(remote: Run, local: Run, two_stages, tmp_path: Path) -> None:
    repo, first, second = two_stages
    remote("stop-pipeline", first)
    assert json.loads(remote("inspect-pipeline", first, "--json").stdout)["state"] == "PIPELINE_PAUSED"
    remote("put-file", repo, "master", "/y", "-f", "-", input="later\n")
    assert "/y" not in remote("list-file", f"{second}@master", "--json").stdout  # stopped: nothing ran
    remote("start-pipeline", first)  # catches up before it returns (embedded)
    assert remote("get-file", second, "master", "/y").stdout == "later\n"
    before = len(lines(remote("list-job", "-p", first, "--json").stdout))
    changed = stage(first, repo, ["sh", "-c", "for f in /pfs/*/*; do tr a-z A-Z < $f > /pfs/out/$(basename $f); done"])
    remote("update-pipeline", "-f", write_spec(tmp_path, changed, name="v2.json"), "--reprocess")
    info = json.loads(remote("inspect-pipeline", first, "--json").stdout)
    assert info["version"] == 2
    assert remote("get-file", second, "master", "/x").stdout == "HELLO\n"
    assert len(lines(remote("list-job", "-p", first, "--json").stdout)) == before + 1
    # the spec from stdin too
    remote("update-pipeline", input=json.dumps(stage(first, repo)))
    assert json.loads(local("inspect-pipeline", first, "--json").stdout)["version"] == 3
    remote("delete-pipeline", second)
    remote("delete-pipeline", first, "--keep-repo")
    assert remote("list-pipeline", "--json").stdout == local("list-pipeline", "--json").stdout
    assert first in remote("list-repo").stdout and second not in remote("list-repo").stdout


def test_edit_pipeline_through_the_server(remote: Run, local: Run) -> None:
    remote("create-repo", "edit-in")
    remote("create-pipeline", input=json.dumps(stage("edit-out", "edit-in")))
    remote("put-file", "edit-in", "master", "/x", "-f", "-", input="x\n")
    # the "editor" is sed: it changes the command, the pipeline is updated with it
    remote("edit-pipeline", "edit-out", "--editor", "sed -i s/saw/seen/")
    info = json.loads(local("inspect-pipeline", "edit-out", "--json").stdout)
    assert info["version"] == 2 and "seen" in info["spec"]["transform"]["cmd"][2]
    assert remote("edit-pipeline", "edit-out", "--editor", "true").stdout == "Pipeline unchanged, no update will be performed.\n"
    renamed = ("edit-pipeline", "edit-out", "--editor", "sed -i s/edit-out/other/")
    assert remote(*renamed, code=4).stderr == local(*renamed, code=4).stderr
    assert json.loads(local("inspect-pipeline", "edit-out", "--json").stdout)["version"] == 2


def test_errors_keep_their_line_and_exit_code(remote: Run, local: Run, tmp_path: Path) -> None:
    bad = {"pipeline": {"name": "bad"}, "transform": {"cmd": "not a list"}, "input": {"pfs": {"repo": "x", "glob": "/*"}}}
    unknown_input = stage("orphan", "no-such-repo")
    for args, code in ((("inspect-pipeline", "nope"), 2), (("inspect-pipeline", "a/b"), 2),
                       (("delete-pipeline", "nope"), 2), (("stop-pipeline", "nope"), 2), (("start-pipeline", "nope"), 2),
                       (("inspect-job", "nope"), 2), (("inspect-job", "nope", "--block"), 2), (("list-datum", "nope"), 2),
                       (("inspect-datum", "nope", "d"), 2), (("stop-job", "nope"), 2), (("restart-datum", "nope", "d"), 2),
                       (("get-logs", "--job", "nope"), 2), (("get-logs", "-p", "nope", "-f"), 2),
                       (("get-logs", "--datum", "d"), 4), (("list-job", "--state", "sideways"), 4),
                       (("flush-commit", "nope@master"), 2), (("flush-commit", "nope@master", "-r", "x"), 2),
                       (("create-pipeline", "-f", write_spec(tmp_path, bad, name="bad.json")), 4),
                       (("create-pipeline", "-f", write_spec(tmp_path, unknown_input, name="orphan.json")), 2),
                       (("update-pipeline", "-f", write_spec(tmp_path, stage("ghost", "x"), name="ghost.json")), 2),
                       (("create-pipeline", "-f", str(tmp_path / "missing.json")), 2),
                       (("inspect-job", "../../etc/passwd"), 4)):
        through, direct = remote(*args, code=code), local(*args, code=code)
        assert through.stderr == direct.stderr and through.stderr.startswith("error: "), args
    assert "transform" in remote("create-pipeline", "-f", str(tmp_path / "bad.json"), code=4).stderr
    assert remote("list-job", "-p", "nope", "--json").stdout == ""  # pachctl 1.4: an empty list


def test_a_wait_through_the_server_times_out_like_locally(remote: Run, local: Run) -> None:
    remote("create-repo", "open-in")
    remote("create-pipeline", input=json.dumps(stage("open-out", "open-in")))
    commit = remote("start-commit", "open-in", "master").stdout.strip()
    through = remote("flush-commit", f"open-in@{commit}", "--timeout", "0.5", code=1)
    assert through.stderr == local("flush-commit", f"open-in@{commit}", "--timeout", "0.5", code=1).stderr
    assert "timed out" in through.stderr
    remote("finish-commit", "open-in", commit)
    assert [r["commit"]["repo"]["name"] for r in lines(remote("flush-commit", f"open-in@{commit}", "--json").stdout)] == ["open-out"]


# ---- raw HTTP, as an attacker ------------------------------------------------------------------


def test_the_api_refuses_bad_input_with_json_errors(herd_server: HerdServer) -> None:
    with httpx.Client(base_url=herd_server.url + "/api/v1", timeout=30) as http:
        bad_state = http.get("/jobs", params={"state": "JOB_SIDEWAYS"})
        assert bad_state.status_code == 422 and "'query state'" in bad_state.json()["error"]["message"]
        assert http.get("/jobs", params={"state": "JOB_SUCCESS"}).status_code == 200
        assert http.get("/logs", params={"tail": -1}).status_code == 422
        assert http.get("/flush", params={"repo": "x"}).status_code == 422  # no ref
        assert http.get("/flush", params={"repo": "x", "ref": "master", "timeout": "soon"}).status_code == 422
        missing = http.get("/pipelines/nope")
        assert missing.status_code == 404 and missing.json()["error"] == {
            "type": "PipelineNotFound", "category": "not_found", "message": "pipeline 'nope' not found", "exit_code": 2}
        traversal = http.get("/job", params={"job": "../../etc/passwd"})
        assert traversal.status_code == 422 and traversal.json()["error"]["type"] == "InvalidArgument"
        assert http.get("/job/datum", params={"job": "x"}).status_code == 422  # no datum


def test_spec_bodies_that_are_not_specs_change_nothing(herd_server: HerdServer) -> None:
    with httpx.Client(base_url=herd_server.url + "/api/v1", timeout=30) as http:
        before = http.get("/pipelines").json()
        for body in (b"not json at all", b"[1, 2]", b"{\"pipeline\": ", b"\xff\xfe{", b"",
                     b"{" * 100_000, b"{\"pipeline\": {\"name\": \"x\"}}"):
            answer = http.post("/pipelines", content=body, headers={"content-type": "application/json"})
            assert answer.status_code == 422, body[:20]
            assert answer.json()["error"]["type"] == "InvalidSpec"
        # huge: refused by its declared length, and by what is read when it declares none
        huge = b"{\"pipeline\": {\"name\": \"big\"}, \"x\": \"" + b"a" * (2 << 20) + b"\"}"
        answer = http.post("/pipelines", content=huge)
        assert answer.status_code == 422 and "larger than" in answer.json()["error"]["message"]
        chunked = http.post("/pipelines", content=iter([huge[i:i + 65536] for i in range(0, len(huge), 65536)]))
        assert chunked.status_code == 422 and "larger than" in chunked.json()["error"]["message"]
        invalid = http.post("/pipelines", content=json.dumps(
            {"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "r", "glob": 3}}}))
        assert invalid.status_code == 422 and "glob" in invalid.json()["error"]["message"]
        assert http.post("/pipelines", params={"update": "maybe"}, content=b"{}").status_code == 422
        assert http.get("/pipelines").json() == before


def test_a_follower_that_hangs_up_is_let_go(herd_server: HerdServer, remote: Run) -> None:
    """Clients following a pipeline's logs (which never end) disconnect: the server notices
    (its heartbeat write fails), ends their streams' threads and keeps answering others."""
    remote("create-repo", "hang-in")
    remote("create-pipeline", input=json.dumps(stage("hang-out", "hang-in")))
    remote("put-file", "hang-in", "master", "/x", "-f", "-", input="hi\n")
    url = urlsplit(herd_server.url)
    with httpx.Client(base_url=herd_server.url + "/api/v1", timeout=30) as http:
        with http.stream("GET", "/logs", params={"pipeline": "hang-out", "follow": "true"}) as answer:
            got = next(line for line in answer.iter_lines() if line.strip())
            assert json.loads(got)["line"]["message"] == "saw x"
        baseline = _settled_threads(herd_server, http)
        for _ in range(8):
            with socket.create_connection((url.hostname, url.port), timeout=30) as raw:
                raw.sendall(b"GET /api/v1/logs?pipeline=hang-out&follow=true HTTP/1.1\r\nHost: x\r\n\r\n")
                assert raw.recv(65536).startswith(b"HTTP/1.1 200")
        assert http.get("/health").status_code == 200
        assert _settled_threads(herd_server, http, at_most=baseline) <= baseline


def _settled_threads(server: HerdServer, http: httpx.Client, at_most: int | None = None) -> int:
    """The server's thread count once it stops falling (idle pool threads are let go when a
    later request runs), or as soon as it is `at_most`."""
    counts: list[int] = []
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        http.get("/health")
        counts.append(len(list(Path(f"/proc/{server.proc.pid}/task").iterdir())))
        if at_most is not None and counts[-1] <= at_most:
            break
        if at_most is None and len(counts) > 12 and min(counts[-12:]) == max(counts[-12:]) == counts[-1]:
            break
        time.sleep(1)
    return counts[-1]


# ---- status and version ------------------------------------------------------------------------


def test_status_and_version_show_the_servers_view(herd_server: HerdServer, remote: Run, local: Run) -> None:
    from scheduler.version import herd_version

    through = json.loads(remote("status", "--json").stdout)
    assert through.pop("server") == {"where": herd_server.url, "up": True, "error": None, "version": herd_version()}
    assert through == json.loads(local("status", "--json").stdout)  # the server's storage, not the client's
    table = remote("status").stdout.splitlines()
    assert table[1].split()[:3] == ["server", herd_server.url, "up"]
    assert str(herd_server.store) in table[2]
    version = json.loads(remote("version", "--json").stdout)
    assert version["server"] == {"where": herd_server.url, "version": herd_version()}
    direct = json.loads(local("version", "--json").stdout)
    assert version["storage"] == direct["storage"] and version["client"] == direct["client"]
    assert [row.split()[0] for row in remote("version").stdout.splitlines()[1:3]] == ["client", "server"]


def test_status_of_a_server_that_does_not_answer_exits_6(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from scheduler.cli import cli
    from tests.fixtures.services import free_port

    address = f"http://127.0.0.1:{free_port()}"
    env = {"HERD_ADDRESS": address, "HERD_STORAGE": f"file://{tmp_path / 'not-used'}", "HERD_BROKER": None}
    result = CliRunner().invoke(cli, ["status"], env=env)
    assert result.exit_code == 6
    assert result.stdout.splitlines()[1].split()[:3] == ["server", address, "down"]
    assert result.stderr.startswith(f"error: herd server at {address} does not answer")
    assert CliRunner().invoke(cli, ["version"], env=env).exit_code == 6
    assert not (tmp_path / "not-used").exists()


def test_a_wait_on_a_server_whose_scheduler_is_not_running_says_so(tmp_path: Path, redis_server) -> None:
    """Distributed mode: the server watches its own broker while the client waits, and the
    client prints the server's note (the client has no broker access: HERD_BROKER unset)."""
    from click.testing import CliRunner, Result

    from scheduler.cli import cli
    from scheduler.cli.waiting import NO_SCHEDULER
    from tests.fixtures.server import start_server, stop_server

    server = start_server(tmp_path, env={"HERD_BROKER": redis_server.url, "HERD_QUEUE": "h12-no-scheduler"})
    try:
        env = {"HERD_ADDRESS": server.url, "HERD_STORAGE": f"file://{tmp_path / 'not-used'}", "HERD_BROKER": None}
        runner = CliRunner()

        def run(*args: str, input: str | None = None) -> Result:
            return runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=False)

        assert run("create-repo", "in").exit_code == 0
        assert run("create-pipeline", input=json.dumps(stage("out", "in"))).exit_code == 0
        assert run("put-file", "in", "master", "/x", "-f", "-", input="x\n").exit_code == 0
        waited = run("flush-commit", "in@master", "--timeout", "8")
        assert waited.exit_code == 1 and "timed out waiting for pipeline 'out'" in waited.stderr
        assert waited.stderr.count(NO_SCHEDULER) == 1
    finally:
        stop_server(server)


def test_get_logs_follow_streams_lines_while_the_job_runs(herd_server: HerdServer, remote: Run, tmp_path: Path) -> None:
    """-f through the server: a line arrives while its job still runs; the stream of a job ends with it."""
    import os
    import subprocess

    from tests.fixtures.server import HERD

    # The gate: user code (sandboxed, its own /tmp, the host's network) blocks until the test
    # sends a byte on a socket it listens on.
    gate = socket.create_server(("127.0.0.1", 0))
    port = gate.getsockname()[1]
    wait_for_gate = (f"echo begin; /usr/bin/python3 -c \"import socket; "
                     f"socket.create_connection(('127.0.0.1', {port})).recv(1)\"; echo end")
    remote("create-repo", "live-in")
    remote("create-pipeline", input=json.dumps(stage("live-out", "live-in", ["sh", "-c", wait_for_gate])))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HERD_")},
           "HERD_ADDRESS": herd_server.url, "HERD_STORAGE": f"file://{tmp_path / 'not-used'}"}
    put = subprocess.Popen([HERD, "put-file", "live-in", "master", "/x", "-f", "-"], stdin=subprocess.PIPE, env=env)
    try:
        assert put.stdin is not None
        put.stdin.write(b"x\n")
        put.stdin.close()
        gate.settimeout(120)
        user_code, _ = gate.accept()
        with user_code, httpx.Client(base_url=herd_server.url + "/api/v1", timeout=60) as http:
            with http.stream("GET", "/logs", params={"pipeline": "live-out", "follow": "true"}) as answer:
                events = (json.loads(line) for line in answer.iter_lines() if line.strip())
                assert next(events)["line"]["message"] == "begin"
                job = http.get("/jobs", params={"pipeline": "live-out"}).json()[0]
                assert job["status"]["state"] in ("JOB_STARTING", "JOB_RUNNING")
                with http.stream("GET", "/logs", params={"job": job["job"]["id"], "follow": "true"}) as of_job:
                    user_code.sendall(b"!")
                    assert next(events)["line"]["message"] == "end"
                    # the job's own stream ends once the job has: every line, then the end
                    assert [json.loads(line)["line"]["message"] for line in of_job.iter_lines() if line.strip()] == [
                        "begin", "end"]
        assert put.wait(timeout=120) == 0
    finally:
        gate.close()
        if put.poll() is None:
            put.kill()
            put.wait()


# ---- auth: what a user may see of pipelines, jobs and logs -------------------------------------


def test_with_auth_a_user_sees_only_the_pipelines_they_may_read(tmp_path: Path) -> None:
    from click.testing import CliRunner, Result

    from scheduler.cli import cli
    from tests.fixtures.server import start_server, stop_server

    (tmp_path / "server").mkdir()
    server = start_server(tmp_path / "server")
    try:
        def as_user(config: Path, *args: str, input: str | None = None, code: int = 0) -> Result:
            env = {"HERD_ADDRESS": server.url, "HERD_CONFIG_DIR": str(config), "HERD_TOKEN": None,
                   "HERD_STORAGE": f"file://{config / 'unused'}", "HERD_BROKER": None}
            result = CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)
            assert result.exit_code == code, f"exit {result.exit_code}: {result.output}{result.stderr}"
            return result

        admin, bob = tmp_path / "admin", tmp_path / "bob"
        as_user(admin, "auth", "activate")
        for name in ("pub", "sec"):
            as_user(admin, "create-repo", f"{name}-in")
            as_user(admin, "create-pipeline", input=json.dumps(stage(name, f"{name}-in")))
            as_user(admin, "put-file", f"{name}-in", "master", "/x", "-f", "-", input="x\n")
        token = as_user(admin, "auth", "create-token", "bob").stdout.strip()
        as_user(bob, "auth", "login", input=token + "\n")
        as_user(admin, "auth", "set-role", "pub-in", "bob", "reader")
        as_user(admin, "auth", "set-role", "pub", "bob", "reader")
        # bob's lists hold only what he may read
        assert [p["pipeline"]["name"] for p in lines(as_user(bob, "list-pipeline", "--json").stdout)] == ["pub"]
        assert {j["pipeline"]["name"] for j in lines(as_user(bob, "list-job", "--json").stdout)} == {"pub"}
        assert {j["pipeline"]["name"] for j in lines(as_user(admin, "list-job", "--json").stdout)} == {"pub", "sec"}
        assert {line["pipeline"] for line in lines(as_user(bob, "get-logs", "--json").stdout)} == {"pub"}
        assert [r["commit"]["repo"]["name"] for r in lines(as_user(bob, "flush-commit", "pub-in@master", "--json").stdout)] == ["pub"]
        # what he may not read is refused, naming him
        sec_job = lines(as_user(admin, "list-job", "-p", "sec", "--json").stdout)[0]["job"]["id"]
        for args in (("inspect-pipeline", "sec"), ("get-logs", "-p", "sec"), ("get-logs", "--job", sec_job),
                     ("inspect-job", sec_job), ("list-datum", sec_job), ("flush-commit", "sec-in@master"),
                     ("stop-pipeline", "pub"), ("create-pipeline", "-f", write_spec(tmp_path, stage("mine", "sec-in")))):
            assert "bob" in as_user(bob, *args, code=11).stderr, args
        # a pipeline bob makes from what he may read is his
        as_user(bob, "create-pipeline", input=json.dumps(stage("bobs", "pub-in")))
        assert "bob" in as_user(bob, "auth", "get-roles", "bobs").stdout
        assert {p["pipeline"]["name"] for p in lines(as_user(bob, "list-pipeline", "--json").stdout)} == {"pub", "bobs"}
        assert as_user(bob, "status", "--json").stdout  # allowed, the server's view
    finally:
        stop_server(server)


def test_the_server_stops_while_a_follower_is_connected(tmp_path: Path) -> None:
    """SIGTERM ends `herd serve` even while a get-logs -f of every pipeline (which never ends) is
    connected: the answer is cut after the grace period, not waited for."""
    import os
    import signal
    import subprocess

    from tests.fixtures.server import start_server, stop_server

    server = start_server(tmp_path)
    try:
        with httpx.Client(base_url=server.url + "/api/v1", timeout=60) as http:
            with http.stream("GET", "/logs", params={"follow": "true"}) as answer:
                assert answer.status_code == 200
                os.killpg(server.proc.pid, signal.SIGTERM)
                try:
                    server.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    pytest.fail("herd serve did not stop while a follower was connected")
    finally:
        stop_server(server)
