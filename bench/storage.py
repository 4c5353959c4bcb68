"""Blob storage throughput against plain copies, on the local folder and on moto's S3 server.

    .venv/bin/python bench/storage.py [--big-mib 256] [--small 5000] [--rounds 2]

herd's side is BlobStore (what herd does with file content: hash while moving, dedupe, temp +
rename; every read verified against its hash while it streams). The anchor is the same
transfer done plainly in the same run: `shutil.copyfile` for the local folder (and, for a get,
copyfile plus one SHA-256 pass: the cost of verifying, the yardstick); boto3
`upload_file`/`download_file` and `put_object`/`get_object` for S3. moto runs as a
ThreadedMotoServer in a child process (its own interpreter, so it does not share the GIL with
the client). Rounds alternate herd and anchor so machine noise hits both alike;
each round writes into fresh folders/prefixes so dedupe never skips the work being timed.
Also, as figures (no test bounds them): Pfs.put_files of the small files as one commit (vs
plain writes / put_object), and listing 100,000 keys of the local folder (vs os.walk + sort).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402 - the anchor's own calls
from botocore.config import Config  # noqa: E402

from storage.blobs import BlobStore  # noqa: E402
from storage.layout import BLOB_PREFIX  # noqa: E402
from storage.local import LocalObjectStore  # noqa: E402
from storage.repos import Pfs  # noqa: E402
from storage.s3 import S3ObjectStore  # noqa: E402

MIB = 1024 * 1024
# Small files go to S3 from a thread pool on both sides: one at a time, moto's ~7 ms per
# request would make 4 x 5,000 requests take minutes.
THREADS = 8
FPS = "files/s"
MOTO = """
import sys, threading, logging
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer
ThreadedMotoServer("127.0.0.1", int(sys.argv[1]), verbose=False).start()
threading.Event().wait()
"""
Row = tuple[str, str, float, float, str]  # backend, operation, herd, anchor, unit


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", MOTO, str(port)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/", timeout=1)  # noqa: S310 - loopback
            return proc, url
        except urllib.error.HTTPError:
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"moto server did not start on {url}")


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def make_inputs(work: Path, big_mib: int, small: int) -> tuple[Path, list[Path]]:
    big = work / "big.bin"
    block = os.urandom(MIB)
    with open(big, "wb") as out:
        for index in range(big_mib):
            out.write(index.to_bytes(8, "big") + block[8:])
    folder = work / "small"
    folder.mkdir()
    files = []
    for index in range(small):
        path = folder / f"f{index:05d}"
        path.write_bytes(index.to_bytes(8, "big") + os.urandom(1016))
        files.append(path)
    os.sync()
    return big, files


def alternate(rounds: int, herd: Callable[[int], float], anchor: Callable[[int], float]) -> tuple[float, float]:
    """Median seconds of each side over rounds that alternate herd and anchor."""
    herd_times, anchor_times = [], []
    for index in range(rounds):
        herd_times.append(herd(index))
        anchor_times.append(anchor(index))
        os.sync()  # dirty pages of one side must not slow the next one
    return statistics.median(herd_times), statistics.median(anchor_times)


def bench_local(work: Path, big: Path, files: list[Path], rounds: int) -> list[Row]:
    mib = big.stat().st_size / MIB
    out = work / "out"

    def fresh(*folders: Path) -> None:
        """Empty folders, outside any timed region."""
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()

    def herd_put(_: int) -> float:
        fresh(work / "store", out)
        blobs = BlobStore(LocalObjectStore(work / "store"))
        return timed(lambda: blobs.put_file(big))

    def plain_put(_: int) -> float:
        fresh(out)
        return timed(lambda: shutil.copyfile(big, out / "big.bin"))

    put = alternate(rounds, herd_put, plain_put)
    fresh(work / "store")
    blobs = BlobStore(LocalObjectStore(work / "store"))
    digest, _ = blobs.put_file(big)
    blob_path = blobs.local_path(digest)
    assert blob_path is not None

    def herd_get(_: int) -> float:
        fresh(out)
        return timed(lambda: blobs.get_file(digest, out / "big.bin"))

    def plain_get(_: int) -> float:
        fresh(out)
        return timed(lambda: shutil.copyfile(blob_path, out / "big.bin"))

    get = alternate(rounds, herd_get, plain_get)

    def copy_then_hash(_: int) -> float:
        """The yardstick for a verified get: a copy, then one SHA-256 pass."""
        fresh(out)

        def run() -> None:
            shutil.copyfile(blob_path, out / "big.bin")
            with open(out / "big.bin", "rb") as copied:
                hashlib.file_digest(copied, "sha256")

        return timed(run)

    verified_get = alternate(rounds, herd_get, copy_then_hash)

    fresh(work / "small-store", out)
    small_blobs = BlobStore(LocalObjectStore(work / "small-store"))
    herd_small_put = timed(lambda: [small_blobs.put_file(f) for f in files])
    plain_small_put = timed(lambda: [shutil.copyfile(f, out / f.name) for f in files])
    digests = [small_blobs.put_bytes(f.read_bytes())[0] for f in files]
    paths = [small_blobs.local_path(d) for d in digests]
    fresh(out)
    herd_small_get = timed(lambda: [small_blobs.get_file(d, out / d) for d in digests])
    fresh(out)
    plain_small_get = timed(lambda: [shutil.copyfile(p, out / p.name) for p in paths])  # type: ignore[union-attr]
    n = len(files)
    items = [(f"/dir{i % 10}/{f.name}", f.read_bytes()) for i, f in enumerate(files)]
    fresh(work / "pfs-store", out)
    pfs = Pfs(LocalObjectStore(work / "pfs-store"))
    pfs.create_repo("data")
    herd_put_files = timed(lambda: pfs.put_files("data", "master", items))
    fresh(out)
    plain_writes = timed(lambda: [(out / f.name).write_bytes(data) for f, (_, data) in zip(files, items, strict=True)])
    keys = 100_000
    herd_list, plain_walk = _list_keys(work / "list-store", keys)
    return [
        ("local", f"put {mib:.0f} MiB file (vs copyfile)", mib / put[0], mib / put[1], "MB/s"),
        ("local", f"get {mib:.0f} MiB file (vs copyfile)", mib / get[0], mib / get[1], "MB/s"),
        ("local", f"get {mib:.0f} MiB file (vs copyfile + sha256)", mib / verified_get[0],
         mib / verified_get[1], "MB/s"),
        ("local", f"put {n} x 1 KiB files (vs copyfile)", n / herd_small_put, n / plain_small_put, FPS),
        ("local", f"get {n} x 1 KiB files (vs copyfile)", n / herd_small_get, n / plain_small_get, FPS),
        ("local", f"put_files {n} x 1 KiB, one commit (vs write_bytes)", n / herd_put_files, n / plain_writes, FPS),
        ("local", f"list {keys:,} keys in 256 folders (vs os.walk + sort)", keys / herd_list, keys / plain_walk,
         "keys/s"),
    ]


def _list_keys(root: Path, count: int) -> tuple[float, float]:
    """Seconds to list `count` keys laid out as blobs are (256 folders): the store, os.walk + sort."""
    for index in range(count):
        folder = root / "blobs" / f"{index % 256:02x}"
        if index < 256:
            folder.mkdir(parents=True)
        (folder / f"{index:06d}").write_bytes(b"")
    store = LocalObjectStore(root)
    herd_keys: list[str] = []
    herd = timed(lambda: herd_keys.extend(store.list(BLOB_PREFIX)))

    def walk() -> list[str]:
        found = [os.path.join(top, name) for top, _, names in os.walk(root / BLOB_PREFIX.rstrip("/")) for name in names]
        return sorted(found)

    plain = timed(walk)
    assert len(herd_keys) == count
    return herd, plain


def bench_s3(work: Path, endpoint: str, big: Path, files: list[Path], rounds: int) -> list[Row]:
    mib = big.stat().st_size / MIB
    client = boto3.client("s3", endpoint_url=endpoint, config=Config(retries={"mode": "standard", "max_attempts": 5}))
    bucket = "herd-bench"
    client.create_bucket(Bucket=bucket)
    out = work / "out.bin"

    def store() -> BlobStore:
        return BlobStore(S3ObjectStore(bucket, uuid.uuid4().hex, endpoint))

    def drop(prefix: str) -> None:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                client.delete_object(Bucket=bucket, Key=item["Key"])

    def herd_put(_: int) -> float:
        blobs = store()
        spent = timed(lambda: blobs.put_file(big))
        drop(blobs.objects.prefix)  # type: ignore[attr-defined]
        return spent

    def plain_put(_: int) -> float:
        spent = timed(lambda: client.upload_file(str(big), bucket, "plain/big.bin"))
        drop("plain/")
        return spent

    put = alternate(rounds, herd_put, plain_put)
    blobs = store()
    digest, _ = blobs.put_file(big)
    client.upload_file(str(big), bucket, "plain/big.bin")

    def fresh_out() -> Path:
        # A new destination each time: ext4 flushes a file renamed over an existing one.
        out.unlink(missing_ok=True)
        return out

    get = alternate(
        rounds,
        lambda i: timed(lambda: blobs.get_file(digest, fresh_out())),
        lambda i: timed(lambda: client.download_file(bucket, "plain/big.bin", str(fresh_out()))),
    )
    fresh_out()
    one_get = timed(lambda: _stream_get(client, bucket, "plain/big.bin", out))
    drop("")

    small_blobs = store()
    digests: list[str] = []
    with ThreadPoolExecutor(THREADS) as pool:
        herd_small_put = timed(lambda: digests.extend(d for d, _ in pool.map(small_blobs.put_file, files)))
        plain_small_put = timed(lambda: list(pool.map(lambda f: _put_small(client, bucket, f), files)))
        folder = work / "s3-small-out"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        herd_small_get = timed(lambda: list(pool.map(lambda d: small_blobs.get_file(d, folder / d), digests)))
        plain_small_get = timed(
            lambda: list(pool.map(lambda f: _get_small(client, bucket, f"plain/{f.name}", folder / f.name), files))
        )
        pfs = Pfs(S3ObjectStore(bucket, uuid.uuid4().hex, endpoint))
        pfs.create_repo("data")
        items = [(f"/dir{i % 10}/{f.name}", f.read_bytes()) for i, f in enumerate(files)]
        herd_put_files = timed(lambda: pfs.put_files("data", "master", items))
        drop("plain/")
        plain_put_files = timed(lambda: list(pool.map(lambda f: _put_small(client, bucket, f), files)))
    n = len(files)
    return [
        ("moto S3", f"put {mib:.0f} MiB file (vs upload_file)", mib / put[0], mib / put[1], "MB/s"),
        ("moto S3", f"get {mib:.0f} MiB file (vs download_file)", mib / get[0], mib / get[1], "MB/s"),
        ("moto S3", f"get {mib:.0f} MiB file (vs one get_object)", mib / get[0], mib / one_get, "MB/s"),
        ("moto S3", f"put {n} x 1 KiB, {THREADS} threads (put_object)", n / herd_small_put, n / plain_small_put, FPS),
        ("moto S3", f"get {n} x 1 KiB, {THREADS} threads (get_object)", n / herd_small_get, n / plain_small_get, FPS),
        ("moto S3", f"put_files {n} x 1 KiB, one commit ({THREADS}-thread put_object)", n / herd_put_files,
         n / plain_put_files, FPS),
    ]


def _stream_get(client: object, bucket: str, key: str, out: Path) -> None:
    body = client.get_object(Bucket=bucket, Key=key)["Body"]  # type: ignore[attr-defined]
    with open(out, "wb") as handle:
        for chunk in body.iter_chunks(MIB):
            handle.write(chunk)


def _put_small(client: object, bucket: str, path: Path) -> None:
    client.put_object(Bucket=bucket, Key=f"plain/{path.name}", Body=path.read_bytes())  # type: ignore[attr-defined]


def _get_small(client: object, bucket: str, key: str, out: Path) -> None:
    out.write_bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())  # type: ignore[attr-defined]


def print_table(rows: list[Row]) -> None:
    header = ("backend", "operation", "herd", "anchor", "unit", "herd/anchor")
    lines = [header] + [(b, op, f"{h:,.1f}", f"{a:,.1f}", unit, f"{h / a:.2f}x") for b, op, h, a, unit in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for index, line in enumerate(lines):
        pairs = enumerate(zip(line, widths, strict=True))
        cells = [cell.ljust(w) if i in (0, 1, 4) else cell.rjust(w) for i, (cell, w) in pairs]
        print("  ".join(cells))
        if index == 0:
            print("  ".join("-" * w for w in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    fake_aws = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in fake_aws.items():
        os.environ.setdefault(name, value)
    proc, endpoint = start_moto()
    try:
        with tempfile.TemporaryDirectory(prefix="herd-bench-") as folder:
            work = Path(folder)
            big, files = make_inputs(work, args.big_mib, args.small)
            started = time.perf_counter()
            print("local folder...", file=sys.stderr, flush=True)
            rows = bench_local(work, big, files, args.rounds)
            print("moto S3...", file=sys.stderr, flush=True)
            rows += bench_s3(work, endpoint, big, files, args.rounds)
            spent = time.perf_counter() - started
            print(f"herd storage bench: {os.cpu_count()} cores, moto at {endpoint}, {spent:.0f} s")
            print("herd = BlobStore (hash while moving, dedupe, temp + rename); higher is better\n")
            print_table(rows)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
