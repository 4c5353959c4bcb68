"""The exact image of a job: resolved once per job, recorded create-only beside its records, run by
every datum, shown by `inspect-job` (and --raw). On the real Docker engine a tag moved to another
image while a slow job runs does not mix two images in one output commit; an engine without the
recorded id fails the datum naming both ids. The local runtime records that it ran no image."""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from scheduler.cli.embedded import settle
from scheduler.job_records import JobState
from scheduler.pipelines import Pipelines
from scheduler.queries import JobQueries
from scheduler.settings import SchedulerSettings
from scheduler.store import PpsStore
from storage.errors import ImageNotFound
from storage.local import LocalObjectStore
from storage.repos import Pfs
from tests.fixtures.services import wait_until
from worker.image_digest import LOCAL_RUNTIME, job_image
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
HERD = ROOT / ".venv" / "bin" / "herd"
MOVING = "herd-test-moving-tag"


def spec(image: str, script: str, glob: str = "/*") -> dict[str, Any]:
    return {"pipeline": {"name": "marks"}, "transform": {"image": image, "cmd": ["sh", "-c", script]},
            "input": {"pfs": {"repo": "in", "glob": glob}}}


def inspect_job(store: Path, job_id: str, *extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERD_")}
    env.update(HERD_STORAGE=f"file://{store}", HERD_RUNTIME="local")
    done = subprocess.run([str(HERD), "inspect-job", job_id, *extra], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_local_runtime_records_that_it_ran_no_image(tmp_path: Path) -> None:
    store = tmp_path / "store"
    pfs = Pfs(LocalObjectStore(store))
    pfs.create_repo("in")
    pfs.put_files("in", "master", [("/a", b"a"), ("/b", b"b")])
    Pipelines(pfs).create(spec("busybox", "cp /pfs/in/* /pfs/out/"))
    settle(pfs, SchedulerSettings(broker=None, parallelism=2), WorkerSettings(runtime="local"))
    info, status = JobQueries(pfs).list("marks")[0]
    assert status.state == JobState.JOB_SUCCESS, status.reason
    assert PpsStore(pfs.objects).read_image(info.id) == LOCAL_RUNTIME
    assert _field(inspect_job(store, info.id), "Image Digest") == LOCAL_RUNTIME
    assert json.loads(inspect_job(store, info.id, "--json"))["image_digest"] == LOCAL_RUNTIME


def test_the_first_recorded_image_wins_and_every_later_read_returns_it(tmp_path: Path) -> None:
    records = PpsStore(LocalObjectStore(tmp_path / "store"))
    assert records.read_image("job1") is None
    assert records.record_image("job1", "sha256:" + "a" * 64) == "sha256:" + "a" * 64
    # A second worker resolving another id (the tag moved) gets the first one back
    assert records.record_image("job1", "sha256:" + "b" * 64) == "sha256:" + "a" * 64
    assert records.read_image("job1") == "sha256:" + "a" * 64
    # The local runtime (no image ids) takes what is recorded, and records its marker otherwise
    assert job_image(records, object(), "job1", "busybox") == "sha256:" + "a" * 64
    assert job_image(records, object(), "job2", "busybox") == LOCAL_RUNTIME


def _field(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name):
            return line[len(name):].strip(" :\t")
    raise AssertionError(f"no '{name}' in {text!r}")


# --- Docker ----------------------------------------------------------------------------------


def _build_marked(client: Any, base: str, mark: str) -> str:
    """An image FROM the busybox test image with /marker holding `mark`; returns its id."""
    dockerfile = f"FROM {base}\nRUN echo {mark} > /marker\n".encode()
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile), tag=f"herd-test-mark-{mark.lower()}:latest",
                                   rm=True, forcerm=True)
    return str(image.id)


@pytest.mark.docker
def test_a_tag_moved_mid_job_does_not_mix_two_images(docker_client: Any, busybox_image: str, tmp_path: Path) -> None:
    # Given two images that differ in /marker, and a tag naming the first
    first = _build_marked(docker_client, busybox_image, "A")
    second = _build_marked(docker_client, busybox_image, "B")
    assert first != second
    docker_client.images.get(first).tag(MOVING, "latest")
    store = tmp_path / "store"
    pfs = Pfs(LocalObjectStore(store))
    pfs.create_repo("in")
    pfs.put_files("in", "master", [(f"/{n}", b"x") for n in range(4)])
    # And a slow pipeline on that tag: one datum at a time, each writes the marker of its image
    script = "for f in /pfs/in/*; do cat /marker > /pfs/out/$(basename $f); done; sleep 1"
    Pipelines(pfs).create(spec(f"{MOVING}:latest", script))
    records = PpsStore(pfs.objects)
    worker = WorkerSettings(runtime="docker", user_network=False)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            settle(pfs, SchedulerSettings(broker=None, parallelism=1), worker)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        # When the tag moves to the second image after the first datum finished
        assert wait_until(lambda: any(records.result_ids(j) for j in records.job_markers("marks")), timeout=240)
        docker_client.images.get(second).tag(MOVING, "latest")
        assert docker_client.images.get(f"{MOVING}:latest").id == second
    finally:
        runner.join(timeout=600)
    assert not failures, failures
    # Then every datum of the job ran the first image, the one the job records
    info, status = JobQueries(pfs).list("marks")[0]
    assert status.state == JobState.JOB_SUCCESS, status.reason
    assert status.data_processed == 4
    manifest = pfs.read_manifest(pfs.inspect_commit("marks", "master"))
    outputs = {path: pfs.open_file("marks", "master", path).read() for path in manifest.files}
    assert outputs == {f"/{n}": b"A\n" for n in range(4)}
    assert records.read_image(info.id) == first
    # And inspect-job shows that id (and --raw)
    assert _field(inspect_job(store, info.id), "Image Digest") == first
    assert json.loads(inspect_job(store, info.id, "--json"))["image_digest"] == first
    # And another worker joining that job now (the tag names the second image) runs the first
    from worker.context import WorkerContext

    late = WorkerContext(pfs.objects, WorkerSettings(runtime="docker", user_network=False, scratch=str(tmp_path / "s")))
    try:
        plan = late.ledger.read_plan(info.id)
        assert plan is not None
        session: Any = late.session(plan, late.spec(plan))
        assert session.transform.image == first
        assert docker_client.api.inspect_container(session.container_id)["Image"] == first
    finally:
        late.close()
    # And the next job resolves the tag afresh: the second image
    pfs.put_files("in", "master", [("/4", b"x")])
    settle(pfs, SchedulerSettings(broker=None, parallelism=1), worker)
    newest, status = JobQueries(pfs).list("marks")[0]
    assert newest.id != info.id and status.state == JobState.JOB_SUCCESS, status.reason
    assert records.read_image(newest.id) == second
    assert pfs.open_file("marks", "master", "/4").read() == b"B\n"


@pytest.mark.docker
def test_an_engine_without_the_recorded_image_fails_naming_both_ids(
    docker_client: Any, busybox_image: str, tmp_path: Path,
) -> None:
    from worker.docker_runtime import DockerRuntime

    runtime = DockerRuntime(docker_client)
    here = runtime.image_id(busybox_image)
    assert here == docker_client.images.get(busybox_image).id and here.startswith("sha256:")
    assert runtime.has_image(here)
    # Given a job whose image id was recorded on another host (this engine never had it)
    elsewhere = "sha256:" + "0" * 64
    assert not runtime.has_image(elsewhere)
    records = PpsStore(LocalObjectStore(tmp_path / "store"))
    records.record_image("job-elsewhere", elsewhere)
    # When a datum of it starts here, it fails naming both ids and the tag
    with pytest.raises(ImageNotFound) as caught:
        job_image(records, runtime, "job-elsewhere", busybox_image)
    message = str(caught.value)
    assert elsewhere in message and here in message and busybox_image in message
    # And a job recorded here runs the id it recorded, not the tag
    assert job_image(records, runtime, "job-here", busybox_image) == here
