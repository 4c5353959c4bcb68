"""The pipeline examples on a real cluster: `herd scheduler`, two `herd worker`s, Redis, S3, Docker.

The outputs must equal the embedded default's (in-process scheduler, local runtime): only
dispatch and runtime differ, the pipeline logic is the same code.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path

import pytest

from scheduler.cli.embedded import settle
from scheduler.job_records import JobState
from scheduler.pipelines import Pipelines
from scheduler.settings import SchedulerSettings
from storage.local import LocalObjectStore
from storage.repos import Pfs
from tests.distributed.conftest import HERD, Cluster, results_of, with_image
from tests.scheduler.pipeline_helpers import EDGES, MONTAGE, WORDCOUNT_MAP, WORDCOUNT_REDUCE, files_of, read

pytestmark = [pytest.mark.redis, pytest.mark.s3, pytest.mark.docker, pytest.mark.slow]

WORDS = {"/a.txt": b"the cat the dog", "/b.txt": b"The end", "/c.txt": b"dog days"}


class Embedded:
    """The laptop default, as the reference: local folder, in-process scheduler, local runtime."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HERD_RUNTIME", "local")
        monkeypatch.delenv("HERD_BROKER", raising=False)
        self.pfs = Pfs(LocalObjectStore(root))

    def put(self, repo: str, files: dict[str, bytes]) -> None:
        self.pfs.put_files(repo, "master", list(files.items()))
        self.settle()

    def create(self, spec: dict) -> None:
        Pipelines(self.pfs).create(copy.deepcopy(spec))
        self.settle()

    def settle(self) -> None:
        settle(self.pfs, SchedulerSettings(broker=None, parallelism=2))


@pytest.fixture
def cluster(running_cluster: Cluster) -> Cluster:
    """The module's running install: a scheduler and workers w1, w2 (pipelines differ per test)."""
    return running_cluster


def herd_cli(cluster: Cluster, *args: str, timeout: float = 120.0) -> str:
    done = subprocess.run([*HERD, *args], env=cluster.env, capture_output=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"herd {' '.join(args)}: {done.stderr.decode(errors='replace')}"
    return done.stdout.decode()


def test_wordcount_map_reduce_through_the_cli_matches_embedded(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the embedded default's outputs for word count
    embedded = Embedded(tmp_path / "embedded", monkeypatch)
    embedded.pfs.create_repo("words")
    embedded.put("words", WORDS)
    embedded.create(WORDCOUNT_MAP)
    embedded.create(WORDCOUNT_REDUCE)
    # And a cluster, driven through the CLI (which only writes to storage when a broker is set)
    herd_cli(cluster, "create-repo", "words")
    folder = tmp_path / "words"
    folder.mkdir()
    for name, data in WORDS.items():
        (folder / name.strip("/")).write_bytes(data)
    herd_cli(cluster, "put-file", "words", "master", "/", "-r", "-f", str(folder))
    for spec in (WORDCOUNT_MAP, WORDCOUNT_REDUCE):
        path = tmp_path / f"{spec['pipeline']['name']}.json"
        path.write_text(json.dumps(with_image(spec, cluster.image)))
        herd_cli(cluster, "create-pipeline", "-f", str(path))

    # When flush-commit waits for the downstream jobs
    commit = cluster.pfs.inspect_commit("words", "master")
    out = herd_cli(cluster, "flush-commit", "words", commit.id, "--timeout", "120", "--json")

    # Then both stages ran on the workers and their outputs equal the embedded ones
    assert [json.loads(line)["commit"]["repo"]["name"] for line in out.splitlines()] == ["map", "reduce"]
    assert files_of(cluster.pfs, "reduce") == files_of(embedded.pfs, "reduce")
    assert files_of(cluster.pfs, "reduce")["/the"] == b"3\n"
    mapped, expected = files_of(cluster.pfs, "map"), files_of(embedded.pfs, "map")
    assert mapped == expected
    for pipeline in ("map", "reduce"):
        info, status = cluster.last_job(pipeline)
        assert status.state == JobState.JOB_SUCCESS
        assert {r.worker for r in results_of(cluster.pfs, info.id)} <= {"w1", "w2"}


def test_edges_then_montage_matches_embedded(cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the same two commits and two stages on the embedded default and on the cluster
    images_1, images_2 = {"/1.img": b"abc\n", "/2.img": b"xyz\n"}, {"/3.img": b"new\n"}
    embedded = Embedded(tmp_path / "embedded", monkeypatch)
    embedded.pfs.create_repo("images")
    embedded.put("images", images_1)
    embedded.create(EDGES)
    embedded.create(MONTAGE)
    embedded.put("images", images_2)
    cluster.pfs.create_repo("images")
    first = cluster.put("images", images_1)
    cluster.pipelines.create(with_image(EDGES, cluster.image))
    cluster.pipelines.create(with_image(MONTAGE, cluster.image))
    cluster.flush("images", first)

    # When a third image arrives
    second = cluster.put("images", images_2)
    outputs = cluster.flush("images", second)
    # flush-commit returns montage's first output from the new commit, paired with the older
    # edges output; the job on the new edges output follows, as in the embedded run.
    cluster.wait_idle()

    # Then it flowed through both stages, and every output equals the embedded run's
    assert [c.repo for c in outputs] == ["edges", "montage"]
    assert files_of(cluster.pfs, "edges") == files_of(embedded.pfs, "edges")
    assert files_of(cluster.pfs, "montage") == files_of(embedded.pfs, "montage")
    assert read(cluster.pfs, "montage", "master", "/montage") == b"ABC\nXYZ\nNEW\nabc\nxyz\nnew\n"


def test_300_datum_job_is_batched_and_spread_over_both_workers(cluster: Cluster) -> None:
    # Given 300 small files and a one-datum-per-file pipeline
    cluster.pfs.create_repo("many")
    expected = {f"/f{i:03d}": f"{i}\n".encode() for i in range(300)}
    commit = cluster.put("many", expected)
    spec = {
        "pipeline": {"name": "copy"},
        "transform": {"image": cluster.image, "cmd": ["sh", "-c", "cp $many /pfs/out/"]},
        "input": {"pfs": {"repo": "many", "glob": "/*"}},
    }

    # When the pipeline runs on the cluster
    cluster.pipelines.create(spec)
    cluster.flush("many", commit, timeout=150)

    # Then every file came through once, with its bytes
    info, status = cluster.last_job("copy")
    assert (status.state, status.data_processed) == (JobState.JOB_SUCCESS, 300)
    out = cluster.pfs.inspect_commit("copy", "master")
    manifest = cluster.pfs.read_manifest(out)
    assert {path: entry.size for path, entry in manifest.files.items()} == {p: len(b) for p, b in expected.items()}
    for path in ("/f000", "/f123", "/f299"):
        assert read(cluster.pfs, "copy", out.id, path) == expected[path]
    # And both workers ran datums, many datums per message
    per_worker = {s.name: datums_run(s.output(), info.id) for s in cluster.services if s.name.startswith("w")}
    assert sum(len(d) for d in per_worker.values()) >= 300
    assert all(per_worker.values()), per_worker
    messages = sum(s.output().count(f"'job_id': '{info.id}'") for s in cluster.services)
    assert 2 <= messages < 100, f"{messages} messages for 300 datums"


def datums_run(log: str, job_id: str) -> list[int]:
    """Datum indices a worker's log reports done for the job (Celery logs each task's result)."""
    found: list[int] = []
    for match in re.finditer(r"'job_id': '(\w+)', 'done': \[([\d, ]*)\]", log):
        if match.group(1) == job_id:
            found += [int(i) for i in match.group(2).split(",") if i.strip()]
    return found
