"""create-pipeline is create-only, through the real `herd` CLI in separate processes, on a
local folder and on moto's S3 server over HTTP.

Races: four create-pipeline calls of one name at once. Exactly one wins; the others exit
non-zero with one line naming the pipeline; the pipeline is at version 1 with the winner's spec,
and the winner's code is what ran.

Crashes: create-pipeline killed at each of its failpoints (`create_pipeline.after_repo`,
`.after_record`, `.after_version`) leaves either nothing of the pipeline, or a pipeline that
the next create-pipeline of the name completes (output repo, spec of version 1, output branch).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from scheduler.spec import parse_spec
from scheduler.store import PpsStore
from storage.errors import AlreadyExists
from storage.failpoints import EXIT_STATUS
from storage.objects import ObjectStore
from storage.repos import Pfs
from tests.fixtures.s3 import FAKE_AWS_ENV, MotoServer, fresh_bucket
from tests.fixtures.services import wait_until

ROOT = Path(__file__).resolve().parents[2]
HERD = ROOT / ".venv" / "bin" / "herd"
RACERS = 4


@dataclass
class Backend:
    store: ObjectStore
    env: dict[str, str]
    cwd: Path
    server: MotoServer | None = None  # the serial S3 server, which the race pauses

    @property
    def pfs(self) -> Pfs:
        return Pfs(self.store)

    def start(self, *args: str, failpoint: str | None = None) -> subprocess.Popen[bytes]:
        env = dict(self.env, HERD_FAILPOINTS=failpoint) if failpoint else self.env
        return subprocess.Popen([str(HERD), *args], env=env, cwd=self.cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def herd(self, *args: str, failpoint: str | None = None) -> tuple[int, str]:
        proc = self.start(*args, failpoint=failpoint)
        _, err = proc.communicate(timeout=180)
        return proc.returncode, err.decode()


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_"))}
    env.update(extra, HERD_RUNTIME="local")
    return env


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        from storage.local import LocalObjectStore

        folder = tmp_path / "store"
        return Backend(LocalObjectStore(folder), _clean_env(HERD_STORAGE=f"file://{folder}"), tmp_path)
    from storage.s3 import S3ObjectStore

    # The single-threaded server: moto's threaded one checks a precondition and then writes
    # without a lock, so two create-only PUTs can both succeed there (a moto race, not herd's).
    server = request.getfixturevalue("moto_server_serial")
    bucket = fresh_bucket()
    env = _clean_env(HERD_STORAGE=f"s3://{bucket}/herd", HERD_S3_ENDPOINT_URL=server.url, **FAKE_AWS_ENV)
    return Backend(S3ObjectStore(bucket, "herd", server.url), env, tmp_path, server)


def _connected(pid: int, port: int) -> bool:
    """Whether process `pid` holds a TCP connection to `port` on loopback (read from /proc)."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return True  # exited: nothing to wait for
    inodes = {link[8:-1] for link in links if link.startswith("socket:[")}
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[2].split(":")[1], 16) == port and fields[9] in inodes:
                return True
    return False


@contextmanager
def paused(server: MotoServer | None, procs: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    """On S3: hold the (serial) server stopped until every racer waits on its first request, so
    their requests interleave one by one instead of one process finishing before another starts."""
    if server is None or server.pid is None:
        yield
        return
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
        wait_until(lambda: all(_connected(p.pid, server.port) for p in procs), timeout=120)
    finally:
        os.kill(server.pid, signal.SIGCONT)


def spec(name: str, tag: str, repo: str = "in") -> dict:
    return {
        "pipeline": {"name": name},
        "transform": {"cmd": ["sh", "-c", f"echo {tag} > /pfs/out/who"]},
        "input": {"pfs": {"repo": repo, "glob": "/"}},
    }


def write(path: Path, *specs: dict) -> str:
    path.write_text("".join(json.dumps(s) for s in specs))
    return str(path)


def who(pfs: Pfs, pipeline: str) -> str:
    with pfs.open_file(pipeline, "master", "/who") as stream:
        return stream.read().decode().strip()


def assert_whole_or_absent(b: Backend, name: str) -> None:
    """The output repo and the pipeline record exist together, and a pipeline is complete."""
    pfs, records = b.pfs, PpsStore(b.store)
    info = records.read_pipeline(name)
    repo_names = {r.name for r in pfs.list_repos()}
    assert (info is not None) == (name in repo_names), (info, repo_names)
    if info is None:
        return
    assert b.store.exists(f"pipelines/{name}/versions/{info.version}")
    branch = pfs.inspect_branch(name, "master")
    assert [(p.repo, p.name) for p in branch.provenance] == [("in", "master")]


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_creates_have_exactly_one_winner(backend: Backend, round_: int) -> None:
    # Given an input repo with data
    backend.pfs.create_repo("in")
    backend.pfs.put_files("in", "master", [("/x", b"data\n")])
    files = [write(backend.cwd / f"spec{k}.json", spec("p", f"racer{k}")) for k in range(RACERS)]
    # When four processes create the same pipeline at once, each with its own spec
    procs: list[subprocess.Popen[bytes]] = []
    with paused(backend.server, procs):
        procs += [backend.start("create-pipeline", "-f", f) for f in files]
    outcomes = []
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        outcomes.append((proc.returncode, err.decode()))
    # Then exactly one succeeded, and every other one failed with one line naming the pipeline
    winners = [k for k, (code, _) in enumerate(outcomes) if code == 0]
    assert len(winners) == 1, outcomes
    for k, (code, err) in enumerate(outcomes):
        if k != winners[0]:
            assert code == AlreadyExists.exit_code, outcomes
            assert len(err.strip().splitlines()) == 1 and "'p'" in err and "Traceback" not in err, err
    # And the pipeline is at version 1 with the winner's spec, which is the code that ran
    info = PpsStore(backend.store).get_pipeline("p")
    assert info.version == 1
    assert parse_spec(info.spec).transform.cmd[-1] == f"echo racer{winners[0]} > /pfs/out/who"
    assert who(backend.pfs, "p") == f"racer{winners[0]}"
    assert list(backend.store.list("pipelines/p/versions/")) == ["pipelines/p/versions/1"]
    assert_whole_or_absent(backend, "p")


@pytest.mark.parametrize("point", ["create_pipeline.after_repo", "create_pipeline.after_record",
                                   "create_pipeline.after_version"])
def test_a_crash_inside_create_pipeline_is_completed_by_the_next_one(backend: Backend, point: str) -> None:
    backend.pfs.create_repo("in")
    backend.pfs.put_files("in", "master", [("/x", b"data\n")])
    first = write(backend.cwd / "first.json", spec("p", "first"))
    second = write(backend.cwd / "second.json", spec("p", "second"))
    # Given create-pipeline killed at the failpoint (as by SIGKILL: no cleanup ran)
    code, err = backend.herd("create-pipeline", "-f", first, failpoint=point)
    assert code == EXIT_STATUS, err
    recorded = PpsStore(backend.store).read_pipeline("p") is not None
    assert recorded == (point != "create_pipeline.after_repo")  # the record is the commit point
    # When the user runs create-pipeline again
    code, err = backend.herd("create-pipeline", "-f", second)
    if recorded:
        # Then the pipeline made before the crash stands (it was committed), now complete
        assert code == AlreadyExists.exit_code and "pipeline 'p' already exists" in err, err
        assert_whole_or_absent(backend, "p")
        code, err = backend.herd("put-file", "in", "master", "/y", "-f", str(backend.cwd / "first.json"))
        assert code == 0, err
        assert who(backend.pfs, "p") == "first"
    else:
        # Then the leftover output repo is taken over and the new pipeline runs
        assert code == 0, err
        assert who(backend.pfs, "p") == "second"
        assert_whole_or_absent(backend, "p")
    assert PpsStore(backend.store).get_pipeline("p").version == 1


def test_a_file_of_specs_is_all_or_nothing(backend: Backend) -> None:
    backend.pfs.create_repo("in")
    good = spec("a", "a")
    bad_input = spec("b", "b", repo="missing")
    cycle = [spec("c", "c", repo="d"), spec("d", "d", repo="c")]
    bad_field = {**spec("e", "e"), "datum_tries": 10**9}
    for n, specs in enumerate([[good, bad_input], [good, *cycle], [good, bad_field], [good, good]]):
        code, err = backend.herd("create-pipeline", "-f", write(backend.cwd / f"multi{n}.json", *specs))
        assert code != 0 and len(err.strip().splitlines()) == 1, err
        # Then the first, valid spec was not created either
        assert PpsStore(backend.store).list_pipelines() == []
        assert [r.name for r in backend.pfs.list_repos()] == ["in"]
    # And specs may read each other's output repos in any order within one file
    downstream, upstream = spec("down", "down", repo="up"), spec("up", "up")
    code, err = backend.herd("create-pipeline", "-f", write(backend.cwd / "chain.json", downstream, upstream))
    assert code == 0, err
    assert sorted(p.name for p in PpsStore(backend.store).list_pipelines()) == ["down", "up"]
