"""A datum's bytes through the Docker runtime on the real engine, as a pipeline moves them: inputs
read verified into memory (or laid out, past 8 MiB) and outputs read from the archive in memory
(or unpacked, past 8 MiB) commit the same bytes; a damaged input never reaches user code."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from scheduler.cli.embedded import settle
from scheduler.job_records import JobState
from scheduler.pipelines import Pipelines
from scheduler.settings import SchedulerSettings
from storage.blobs import BlobStore
from tests.scheduler.pipeline_helpers import files_of
from tests.worker.test_err_cmd_docker import DockerHerd, docker_herd  # noqa: F401 - the fixture

BIG = 9 * 1024 * 1024  # past DockerSession.inputs_in_memory and the outputs' in-memory archive


def copy_spec(image: str, name: str, glob: str, script: str) -> dict[str, Any]:
    return {
        "pipeline": {"name": name},
        "transform": {"image": image, "cmd": ["sh", "-c", script]},
        "input": {"pfs": {"repo": "in", "glob": glob}},
        "datum_tries": 1,
    }


def test_inputs_and_outputs_small_and_large_commit_the_same_bytes(docker_herd: Any, busybox_image: str) -> None:
    herd: DockerHerd = docker_herd()
    # Given inputs in folders: tiny, empty, many small, and one past the in-memory bound
    files = {"/tiny/a": b"a\n", "/tiny/empty": b"", "/big/blob": os.urandom(BIG)}
    files.update({f"/many/sub/part-{i:02}": f"row {i}\n".encode() * 50 for i in range(20)})
    # When each folder is a datum that copies its input and adds outputs of every size
    script = ("cp -r /pfs/in/* /pfs/out/; n=$(basename /pfs/in/*); echo \"$n\" > /pfs/out/$n.name; "
              "[ $n != many ] || for i in $(seq 1 20); do echo extra $i > /pfs/out/many/x$i; done")
    _, status = herd.run(files, copy_spec(busybox_image, "copy", "/*", script))
    # Then the output commit holds every byte, whichever way each datum's bytes went
    assert status.state == JobState.JOB_SUCCESS, status.reason
    expected = {**files, "/tiny.name": b"tiny\n", "/many.name": b"many\n", "/big.name": b"big\n"}
    expected.update({f"/many/x{i}": f"extra {i}\n".encode() for i in range(1, 21)})
    assert files_of(herd.pfs, "copy") == expected


def test_a_damaged_input_fails_its_datum_before_user_code_runs(docker_herd: Any, busybox_image: str) -> None:
    herd: DockerHerd = docker_herd()
    # Given an input whose stored blob was changed on disk after it was committed
    body = b"precious input\n" * 100
    herd.pfs.put_files("in", "master", [("/f", body)])
    blob = BlobStore(herd.pfs.objects).local_path(hashlib.sha256(body).hexdigest())
    assert blob is not None
    os.chmod(blob, 0o644)
    blob.write_bytes(b"tampered input\n" * 100 + b"!")
    # When a pipeline reads it
    Pipelines(herd.pfs).create(copy_spec(busybox_image, "reader", "/", "echo ran; cp /pfs/in/f /pfs/out/"))
    settle(herd.pfs, SchedulerSettings(broker=None, parallelism=1), herd.worker)
    info, status = herd.jobs.list("reader")[0]
    # Then the datum fails naming the damage, user code never ran, and nothing was output
    assert status.state == JobState.JOB_FAILURE and status.data_failed == 1
    result = herd.records.read_result(info.id, status.failed_datums[0])
    assert result is not None and result.error == "input_corrupt", result
    assert herd.stdout(info.id, status.failed_datums[0]) == []
    assert result.outputs == {}
