"""Files through `herd serve`: every file verb prints what it prints on storage directly, bytes
round-trip streamed both ways, damage and cut uploads are errors that store nothing, and paths
that try to climb out are refused naming them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.cli.test_cli_pfs import http_files  # noqa: F401 - a fixture: a loopback HTTP server
from tests.fixtures.server import HerdServer, Run, start_server, stop_server
from tests.fixtures.services import wait_until

ID = re.compile(r"\b[0-9a-f]{32}\b")


def commits(local: Run, repo: str) -> list[str]:
    return [json.loads(line)["commit"]["id"] for line in local("list-commit", repo, "--json").stdout.splitlines()]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def tar_of(members: list[tuple[str, bytes]], kind: bytes = tarfile.REGTYPE, end: bool = True) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if "\x00" in name:  # only a pax header carries a NUL through
                info.name, info.pax_headers = "/innocent", {"path": name}
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.linkname = "/etc/passwd"
                tar.addfile(info)
    data = out.getvalue()
    return data if end else data.rstrip(b"\0")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "a" / "b").mkdir(parents=True)
    (root / "top.txt").write_text("top\n")
    (root / "a" / "one.csv").write_text("1,2\n3,4\n")
    (root / "a" / "b" / "deep.bin").write_bytes(os.urandom(3000))
    return root


def test_every_file_verb_prints_what_it_prints_locally(remote: Run, local: Run, folder: Path, tmp_path: Path) -> None:
    remote("create-repo", "docs")
    remote("put-file", "docs", "master", "/notes.txt", input="hello\n")
    remote("put-file", "docs", "master", "/in", "-r", "-f", str(folder))
    assert len(commits(local, "docs")) == 2  # -r: many files, ONE commit
    remote("put-file", "docs", "master", "/notes.txt", "--append", input="more\n")
    assert local("get-file", "docs", "master", "/notes.txt").stdout == "hello\nmore\n"
    remote("create-repo", "other")
    remote("copy-file", "docs", "master", "/in", "other", "master", "/copied")
    remote("delete-file", "docs", "master", "/in/top.txt")
    for verb in (
        ("list-file", "docs", "master", "--json"), ("list-file", "docs", "master", "/in/a", "--raw"),
        ("glob-file", "docs", "master", "/in/*", "--json"), ("glob-file", "other", "master", "/**.csv", "--json"),
        ("inspect-file", "docs", "master", "/in/a", "--raw"), ("inspect-file", "docs", "master^", "/notes.txt", "--json"),
        ("diff-file", "docs", "master", "/", "--json"), ("diff-file", "docs@master:/in", "docs@master^^:/in", "--json"),
        ("diff-file", "other", "master", "/copied", "docs", "master", "/in", "--json"),
        ("get-file", "other", "master", "/copied/a/one.csv"), ("list-file", "other", "master", "/copied/a"),
    ):
        assert remote(*verb).stdout == local(*verb).stdout, verb
    failures: tuple[tuple[tuple[str, ...], int], ...] = (
        (("get-file", "docs", "master", "/nope"), 2), (("get-file", "docs", "master", "/in"), 4),
        (("inspect-file", "docs", "master", "/in/top.txt"), 2), (("delete-file", "docs", "master", "/"), 4),
        (("put-file", "docs", "master", "/x/../y"), 4), (("glob-file", "docs", "master", "["), 4),
        (("copy-file", "docs", "master", "/nope", "other", "master", "/x"), 2))
    for failing, code in failures:
        through, direct = remote(*failing, code=code, input=""), local(*failing, code=code, input="")
        assert through.stderr == direct.stderr and through.stderr.startswith("error: "), failing
    assert not (tmp_path / "not-used").exists()  # the client's own HERD_STORAGE was never opened


def test_a_binary_file_bigger_than_a_chunk_round_trips(remote: Run, local: Run, tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 123)
    (tmp_path / "big.bin").write_bytes(data)
    remote("create-repo", "bytes")
    remote("put-file", "bytes", "master", "/big.bin", "-f", str(tmp_path / "big.bin"))
    remote("put-file", "bytes", "master", "/stdin.bin", input=data)  # stdin, streamed
    remote("get-file", "bytes", "master", "/big.bin", "-o", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data
    assert remote("get-file", "bytes", "master", "/stdin.bin").stdout_bytes == data
    assert local("get-file", "bytes", "master", "/big.bin").stdout_bytes == data
    remote("put-file", "bytes", "master", "/big.bin", "--append", "-f", str(tmp_path / "big.bin"))
    assert remote("get-file", "bytes", "master", "/big.bin").stdout_bytes == data + data  # two chunks


def test_get_file_r_writes_a_directory_into_a_folder(remote: Run, folder: Path, tmp_path: Path) -> None:
    remote("create-repo", "tree")
    remote("put-file", "tree", "master", "/t", "-r", "-f", str(folder))
    remote("get-file", "tree", "master", "/t", "-r", "-o", str(tmp_path / "out"))
    assert tree(tmp_path / "out") == tree(folder)
    remote("get-file", "tree", "master", "/t", "-o", str(tmp_path / "x"), code=4)  # a directory needs -r
    (tmp_path / "trap").mkdir()
    (tmp_path / "trap" / "a").symlink_to(tmp_path / "elsewhere")
    refused = remote("get-file", "tree", "master", "/t", "-r", "-o", str(tmp_path / "trap"), code=4)
    assert "symlink" in refused.stderr and not (tmp_path / "elsewhere").exists()


def test_put_file_split_line(remote: Run, local: Run) -> None:
    remote("create-repo", "split")
    remote("create-repo", "split_local")
    lines = "".join(f"line {i}\n" for i in range(7))
    remote("put-file", "split", "master", "/rows", "--split", "line", "--target-file-datums", "3", input=lines)
    local("put-file", "split_local", "master", "/rows", "--split", "line", "--target-file-datums", "3", input=lines)
    listed = remote("list-file", "split", "master", "/rows", "--json").stdout
    mine = local("list-file", "split_local", "master", "/rows", "--json").stdout
    assert ID.sub("ID", listed.replace('"split"', '"split_local"')) == ID.sub("ID", mine)  # commit ids differ
    assert remote("get-file", "split", "master", "/rows/0000000000000002").stdout == "line 6\n"
    bad = remote("put-file", "split", "master", "/j", "--split", "json", input="{not json", code=4)
    assert bad.stderr == local("put-file", "split_local", "master", "/j", "--split", "json", input="{not json", code=4).stderr
    assert len(commits(local, "split")) == 1


def _blob(server: HerdServer, local: Run, repo: str, path: str) -> Path:
    digest = str(json.loads(local("inspect-file", repo, "master", path, "--json").stdout)["hash"])
    return server.store / "blobs" / digest[:2] / digest


@pytest.mark.parametrize("size", [1000, 3 * 1024 * 1024])
def test_a_damaged_blob_is_exit_8_and_leaves_no_file(
    remote: Run, local: Run, herd_server: HerdServer, tmp_path: Path, size: int,
) -> None:
    repo = f"damaged{size}"
    (tmp_path / "f.bin").write_bytes(os.urandom(size))
    remote("create-repo", repo)
    remote("put-file", repo, "master", "/f.bin", "-f", str(tmp_path / "f.bin"))
    blob = _blob(herd_server, local, repo, "/f.bin")
    with open(blob, "r+b") as handle:  # flip one byte near the end of the stored blob
        handle.seek(-10, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-10, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 0xFF]))
    out = tmp_path / "out.bin"
    failed = remote("get-file", repo, "master", "/f.bin", "-o", str(out), code=8)
    assert failed.stderr.startswith("error: ") and "/f.bin" in failed.stderr and repo in failed.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.bin")]
    remote("get-file", repo, "master", "/f.bin", code=8)


@pytest.mark.parametrize("path", ["/../etc/passwd", "/a/../../b", "a//b", "/a/\x00b", "/"])
def test_a_put_path_that_climbs_out_is_refused_naming_it(herd_server: HerdServer, local: Run, path: str) -> None:
    with httpx.Client(base_url=herd_server.url + "/api/v1") as http:
        http.post("/repos", json={"name": "climb"})
        answer = http.put("/repos/climb/file", params={"ref": "master", "path": path}, content=b"x")
    assert answer.status_code == 422
    assert answer.json()["error"]["type"] == "InvalidPath"
    assert commits(local, "climb") == []


@pytest.mark.parametrize("members,kind,named", [
    ([("/ok.txt", b"fine"), ("../escape", b"x")], tarfile.REGTYPE, "../escape"),
    ([("/a/../../b", b"x")], tarfile.REGTYPE, "/a/../../b"),
    ([("relative/name", b"x")], tarfile.REGTYPE, "relative/name"),
    ([("/link", b"")], tarfile.SYMTYPE, "/link"),
    ([("/hard", b"")], tarfile.LNKTYPE, "/hard"),
    ([("/dev", b"")], tarfile.CHRTYPE, "/dev"),
    ([("/a\x00b", b"x")], tarfile.REGTYPE, "/a\\x00b"),
    ([("/dir", b"")], tarfile.DIRTYPE, "/dir"),
])
def test_a_tar_member_that_is_not_a_plain_herd_path_is_refused(
    herd_server: HerdServer, local: Run, members: list[tuple[str, bytes]], kind: bytes, named: str,
) -> None:
    with httpx.Client(base_url=herd_server.url + "/api/v1") as http:
        http.post("/repos", json={"name": "tars"})
        answer = http.post("/repos/tars/files", params={"ref": "master"}, content=tar_of(members, kind))
    assert answer.status_code == 422, answer.text
    assert named in answer.json()["error"]["message"]
    assert commits(local, "tars") == []
    fine = hashlib.sha256(b"fine").hexdigest()  # a good member before the bad one: not stored either
    assert not (herd_server.store / "blobs" / fine[:2] / fine).exists()


@pytest.fixture
def spooling_server(tmp_path: Path) -> Iterator[tuple[HerdServer, Path]]:
    """A server of its own whose temp folder (where uploads are spooled) the test can see."""
    spool = tmp_path / "spool"
    spool.mkdir()
    server = start_server(tmp_path, env={"TMPDIR": str(spool)})
    yield server, spool
    stop_server(server)


def test_a_cut_upload_stores_nothing(spooling_server: tuple[HerdServer, Path]) -> None:
    server, spool = spooling_server
    url = server.url + "/api/v1"
    with httpx.Client(base_url=url) as http:
        http.post("/repos", json={"name": "cut"})
        # a tar cut inside a member, and one cut at a member boundary (no end-of-archive marker)
        whole = tar_of([("/a.txt", b"a" * 5000), ("/b.txt", b"b" * 5000)])
        for body in (whole[:2500], whole[:7000], tar_of([("/a.txt", b"a" * 10)], end=False), b"", b"not a tar at all"):
            answer = http.post("/repos/cut/files", params={"ref": "master"}, content=body)
            assert answer.status_code == 422, answer.text

        def breaks() -> Iterator[bytes]:
            yield b"x" * 100_000
            raise RuntimeError("the client fell over")

        with pytest.raises(RuntimeError):
            http.put("/repos/cut/file", params={"ref": "master", "path": "/gone.txt"}, content=breaks())
        with pytest.raises(RuntimeError):
            http.post("/repos/cut/files", params={"ref": "master"}, content=breaks())
    # a Content-Length that lies: fewer bytes come than announced, then the client goes away
    where = urlsplit(server.url)
    assert where.hostname is not None and where.port is not None
    with socket.create_connection((where.hostname, where.port)) as raw:
        raw.sendall(b"PUT /api/v1/repos/cut/file?ref=master&path=/short.txt HTTP/1.1\r\n"
                    b"Host: x\r\nContent-Length: 100000\r\n\r\n" + b"y" * 1000)
    # every spooled body is gone once the server has seen each client go
    assert wait_until(lambda: not any(spool.iterdir()), timeout=30), list(spool.iterdir())
    with httpx.Client(base_url=url) as http:  # the server is still there, and holds nothing
        assert http.get("/health").status_code == 200
        assert http.get("/repos/cut/commits").json() == []
    assert not (server.store / "blobs").exists() or not any((server.store / "blobs").rglob("*"))


def test_a_download_carries_its_size_and_hash(herd_server: HerdServer, remote: Run) -> None:
    remote("create-repo", "heads")
    remote("put-file", "heads", "master", "/h.txt", input="abc")
    with httpx.Client(base_url=herd_server.url + "/api/v1") as http:
        answer = http.get("/repos/heads/file", params={"ref": "master", "path": "/h.txt"})
        assert answer.content == b"abc" and answer.headers["content-length"] == "3"
        assert answer.headers["x-herd-sha256"] == hashlib.sha256(b"abc").hexdigest() == answer.headers["x-herd-hash"]
        assert http.get("/repos/heads/file", params={"ref": "master"}).status_code == 422  # no path
        assert http.get("/repos/heads/file", params={"ref": "master", "path": "/nope"}).status_code == 404
        nowhere = http.put("/repos/nowhere/file", params={"ref": "master", "path": "/a"}, content=b"x")
        assert nowhere.status_code == 404 and nowhere.json()["error"]["message"] == "repo 'nowhere' not found"


def test_url_sources_are_read_on_the_client_side(remote: Run, local: Run, http_files: tuple[str, Path]) -> None:
    base, served = http_files
    (served / "a.csv").write_bytes(b"a,b\n1,2\n")
    (served / "b.csv").write_bytes(os.urandom(2 * 1024 * 1024))
    remote("create-repo", "web")
    remote("put-file", "web", "master", "/one.csv", "-f", f"{base}/a.csv")
    remote("put-file", "web", "master", "/w", "-f", f"{base}/a.csv", "-f", f"{base}/b.csv")  # one tar, one commit
    assert local("get-file", "web", "master", "/w/b.csv").stdout_bytes == (served / "b.csv").read_bytes()
    assert local("get-file", "web", "master", "/one.csv").stdout == "a,b\n1,2\n"
    assert len(commits(local, "web")) == 2
    missing = remote("put-file", "web", "master", "/x", "-f", f"{base}/nope.csv", code=2)
    assert missing.stderr == local("put-file", "web", "master", "/x", "-f", f"{base}/nope.csv", code=2).stderr


def test_the_python_api_opens_a_remote_file_as_a_stream(herd_server: HerdServer, remote: Run) -> None:
    from scheduler.remote.herd import RemoteHerd
    from storage.errors import FileNotFound

    data = os.urandom(3 * 1024 * 1024)
    remote("create-repo", "opened")
    remote("put-file", "opened", "master", "/o.bin", input=data)
    pfs = RemoteHerd(herd_server.url).pfs
    with pfs.open_file("opened", "master", "/o.bin") as stream:
        assert stream.read(10) == data[:10] and stream.read() == data[10:]
    with pytest.raises(FileNotFound):  # refused at open, as Pfs.open_file refuses
        pfs.open_file("opened", "master", "/nope")
    pfs.client.close()
