"""A 300 MiB file goes in and out of S3 (moto over HTTP) and the local store in bounded memory.

Each transfer runs in its own child Python process, which reports its peak RSS (VmHWM): the
transfer must stream, never hold the file, so the peak stays under 250 MB whatever the size.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.s3 import MotoServer, fresh_bucket

SIZE = 300 * 1024 * 1024
PEAK_LIMIT = 250 * 1000 * 1000
ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys
from pathlib import Path
from storage.blobs import BlobStore

def store(spec):
    kind, where, endpoint = spec["kind"], spec["where"], spec.get("endpoint")
    if kind == "local":
        from storage.local import LocalObjectStore
        return LocalObjectStore(Path(where))
    from storage.s3 import S3ObjectStore
    return S3ObjectStore(where, "mem", endpoint)

def peak_rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

spec = json.loads(sys.argv[1])
blobs = BlobStore(store(spec))
if spec["op"] == "put":
    digest, size = blobs.put_file(Path(spec["path"]))
else:
    digest, size = spec["digest"], None
    blobs.get_file(digest, Path(spec["path"]))
print(json.dumps({"digest": digest, "size": size, "peak": peak_rss()}))
"""


def run_child(spec: dict[str, object]) -> dict[str, object]:
    """Run one transfer in a fresh interpreter; its JSON report (digest, size, peak RSS)."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """300 MiB of incompressible bytes, written 1 MiB at a time, and its sha256."""
    path = tmp_path_factory.mktemp("big") / "big.bin"
    sha = hashlib.sha256()
    block = os.urandom(1024 * 1024)
    with open(path, "wb") as out:
        for index in range(SIZE // len(block)):
            chunk = index.to_bytes(8, "big") + block[8:]  # every MiB differs
            sha.update(chunk)
            out.write(chunk)
    return path, sha.hexdigest()


def round_trip(spec: dict[str, object], big_file: tuple[Path, str], tmp_path: Path) -> None:
    source, digest = big_file
    # When the file is put as a blob in one child process
    put = run_child({**spec, "op": "put", "path": str(source)})
    # Then its id is the file's sha256 and the child's peak RSS stayed under the limit
    assert put["digest"] == digest and put["size"] == SIZE
    assert put["peak"] < PEAK_LIMIT, f"put peaked at {put['peak'] / 1e6:.0f} MB"
    # When it is got back in another child; Then the same bytes, under the same limit
    dest = tmp_path / "back.bin"
    got = run_child({**spec, "op": "get", "digest": digest, "path": str(dest)})
    assert got["peak"] < PEAK_LIMIT, f"get peaked at {got['peak'] / 1e6:.0f} MB"
    print(f"{spec['kind']}: peak RSS put {put['peak'] / 1e6:.0f} MB, get {got['peak'] / 1e6:.0f} MB")
    with open(dest, "rb") as back:
        assert dest.stat().st_size == SIZE and hashlib.file_digest(back, "sha256").hexdigest() == digest


@pytest.mark.slow
@pytest.mark.s3
def test_300_mib_through_s3_in_bounded_memory(
    moto_server: MotoServer, big_file: tuple[Path, str], tmp_path: Path
) -> None:
    # Given moto's threaded server (multipart parts arrive in parallel) and a fresh bucket
    round_trip({"kind": "s3", "where": fresh_bucket(), "endpoint": moto_server.url}, big_file, tmp_path)


@pytest.mark.slow
def test_300_mib_through_the_local_store_in_bounded_memory(big_file: tuple[Path, str], tmp_path: Path) -> None:
    # Given a local store folder
    round_trip({"kind": "local", "where": str(tmp_path / "store")}, big_file, tmp_path)
