"""Item 8 of issue 9: an S3 server that ignores conditional writes is refused, by name.

The honest server is moto over HTTP. The dishonest one is real too: moto behind a small
threaded HTTP proxy on 127.0.0.1 that forwards every request but drops the If-None-Match
and/or If-Match headers, as older MinIO releases and some other S3 servers do. The same
proxy, dropping nothing, shows which PUTs wait for '100 Continue'.
"""

from __future__ import annotations

import http.client
import http.server
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore
import pytest

from storage.errors import StorageUnavailable
from storage.repos import Pfs
from storage.s3 import NO_CONTINUE_BYTES, USER_AGENT, user_agent
from tests.fixtures.s3 import MotoServer, fresh_bucket

pytestmark = pytest.mark.s3

HERD = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "herd"
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}


class StrippingProxy:
    """Forwards HTTP requests to `upstream`, dropping the named request headers."""

    def __init__(self, upstream: MotoServer, strip: set[str]) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self._body()
                headers = {
                    name: value for name, value in self.headers.items()
                    if name.lower() not in strip and name.lower() not in _HOP_BY_HOP
                }
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                proxy.requests.append((self.command, self.path, dict(self.headers.items())))
                upstream_conn = http.client.HTTPConnection(upstream.host, upstream.port, timeout=60)
                try:
                    upstream_conn.request(self.command, self.path, body=body or None, headers=headers)
                    response = upstream_conn.getresponse()
                    data = response.read()
                    self.send_response(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream_conn.close()

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy_for(moto_server_serial: MotoServer) -> Iterator[Callable[[set[str]], StrippingProxy]]:
    made: list[StrippingProxy] = []

    def make(strip: set[str]) -> StrippingProxy:
        made.append(StrippingProxy(moto_server_serial, strip))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


def _counting(store: Any, operation: str) -> list[str]:
    """URLs of every `operation` request the store sends (a botocore hook that only watches)."""
    seen: list[str] = []
    store._client.meta.events.register(f"before-send.s3.{operation}", lambda request, **_: seen.append(request.url))
    return seen


def test_an_honest_server_is_probed_once_and_the_verdict_is_kept(s3_store: Callable[..., Any]) -> None:
    # Given a fresh bucket prefix on moto, which honours both conditional headers
    store = s3_store("herd")
    puts = _counting(store, "PutObject")
    # When the store first writes
    store.put("repos/a/repo.json", b"{}")
    store.put("second", b"x")
    # Then it probed once (create, create again, wrong If-Match) on a probe key it then deleted,
    # stored the verdict, and the writes went through
    probes = [url for url in puts if "/_herd/probe/" in url]
    assert len(probes) == 3 and len(set(probes)) == 1
    assert sum("/_herd/conditional-writes" in url for url in puts) == 1
    assert list(store.list("_herd/probe/")) == []
    assert list(store.list("_herd/")) == ["_herd/conditional-writes"]
    assert store.get("repos/a/repo.json") == b"{}"
    # And the verdict is hidden from whole-store listings
    assert list(store.list("")) == ["repos/a/repo.json", "second"]
    # When a later process (a new store on the same prefix) writes
    later = s3_store("herd", bucket=store.bucket)
    later_puts, later_gets = _counting(later, "PutObject"), _counting(later, "GetObject")
    assert later.put_if_absent("third", b"y") is True
    later.put("fourth", b"z")
    # Then it read the verdict with one GET and probed nothing
    assert [url for url in later_puts if "/_herd/" in url] == []
    assert sum("/_herd/conditional-writes" in url for url in later_gets) == 1
    # And another prefix of the same bucket is checked on its own
    other = s3_store("elsewhere", bucket=store.bucket)
    other_puts = _counting(other, "PutObject")
    other.put("k", b"v")
    assert sum("/_herd/probe/" in url for url in other_puts) == 3


@pytest.mark.parametrize("strip", [{"if-none-match", "if-match"}, {"if-none-match"}, {"if-match"}],
                         ids=["both", "if-none-match", "if-match"])
def test_a_server_that_ignores_conditional_writes_is_refused_naming_it(
    s3_store: Callable[..., Any], proxy_for: Callable[[set[str]], StrippingProxy], tmp_path: Path, strip: set[str]
) -> None:
    # Given a bucket that exists (made directly on moto) with a key in it, and moto seen through
    # a proxy that drops conditional headers
    bucket = fresh_bucket()
    direct = s3_store("herd", bucket=bucket)
    direct.put("existing", b"old")
    direct.delete("_herd/conditional-writes")  # as if this prefix had never been checked
    proxy = proxy_for(strip)
    store = s3_store("herd", bucket=bucket, server=proxy)  # type: ignore[arg-type]
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 << 20))
    # When any write is tried; Then StorageUnavailable names the endpoint, in one line
    attempts: list[Callable[[], object]] = [
        lambda: store.put("k", b"v"),
        lambda: store.put_if_absent("k", b"v"),
        lambda: store.compare_and_set("existing", None, b"new"),
        lambda: store.put_file("big", big),
        lambda: store.delete("existing"),
        lambda: Pfs(store).create_repo("data"),
    ]
    for attempt in attempts:
        with pytest.raises(StorageUnavailable) as caught:
            attempt()
        message = str(caught.value)
        assert proxy.url in message and "conditional writes" in message and "\n" not in message
        assert caught.value.exit_code == 6
    # And the probe ran once, not once per write
    assert sum(1 for method, path, _ in proxy.requests if method == "PUT" and "/_herd/probe/" in path) <= 3
    # And nothing was written: the old key is intact, no probe key, no verdict, no upload
    assert list(direct.list("")) == ["existing"]
    assert list(direct.list("_herd/")) == []
    assert direct.get("existing") == b"old"
    assert list(direct.incomplete_uploads()) == []
    # And reading through the dishonest server still works
    assert store.get("existing") == b"old"


def test_the_cli_refuses_a_dishonest_server_in_one_line(
    s3_store: Callable[..., Any], proxy_for: Callable[[set[str]], StrippingProxy]
) -> None:
    # Given HERD_STORAGE on a bucket reached through the header-dropping proxy
    bucket = fresh_bucket()
    s3_store("other", bucket=bucket).put("made", b"")  # the bucket exists
    proxy = proxy_for({"if-none-match", "if-match"})
    env = {**os.environ, "HERD_STORAGE": f"s3://{bucket}/herd", "HERD_S3_ENDPOINT_URL": proxy.url,
           "HERD_RUNTIME": "local"}
    # When a user creates a repo; Then exit 6 and one line naming the endpoint, no traceback
    done = subprocess.run([str(HERD), "create-repo", "data"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 6, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and proxy.url in lines[0]
    assert "Traceback" not in done.stderr
    # And nothing is under the prefix
    assert list(s3_store("herd", bucket=bucket).list("")) == []


@pytest.fixture
def recorded(
    s3_store: Callable[..., Any], proxy_for: Callable[[set[str]], StrippingProxy]
) -> tuple[Any, StrippingProxy]:
    """A store on a checked bucket prefix on moto, seen through a proxy that drops nothing and
    records each request's headers as they arrive; and that proxy."""
    bucket = fresh_bucket()
    s3_store("herd", bucket=bucket).put("made", b"")
    proxy = proxy_for(set())
    return s3_store("herd", bucket=bucket, server=proxy), proxy


def test_small_puts_send_their_body_at_once_and_large_ones_wait_for_100_continue(
    recorded: tuple[Any, StrippingProxy],
) -> None:
    # Given a store whose requests are recorded on their way to moto
    store, proxy = recorded
    small, large = os.urandom(NO_CONTINUE_BYTES), os.urandom(NO_CONTINUE_BYTES + 1)
    # When each is written create-only, then written again
    assert store.put_if_absent("small", small) and store.put_if_absent("large", large)
    assert not store.put_if_absent("small", b"other") and not store.put_if_absent("large", large[::-1])
    # Then the PUTs of up to NO_CONTINUE_BYTES carried no Expect header (botocore's default
    # waits a round trip for '100 Continue'), and the larger ones still asked for it
    expect = [(path.rsplit("/", 1)[-1], headers.get("Expect")) for method, path, headers in proxy.requests
              if method == "PUT"]
    assert expect == [("small", None), ("large", "100-continue")] * 2
    # And the server still refused the second writes (412): the first bodies are kept
    assert store.get("small") == small and store.get("large") == large


def test_requests_carry_herds_user_agent(recorded: tuple[Any, StrippingProxy]) -> None:
    # Given a store whose requests are recorded on their way to moto
    store, proxy = recorded
    # When it writes, reads and lists
    assert store.put_if_absent("k", b"v") and store.get("k") == b"v" and "k" in store.list_children("")
    # Then every request names herd and the versions it runs on (botocore's own string, which
    # it builds anew for each request, is not used)
    [agent] = {headers.get("User-Agent") or "" for _, _, headers in proxy.requests}
    assert agent.startswith(USER_AGENT + " ") and agent.endswith(f" Botocore/{botocore.__version__}")
    assert USER_AGENT.startswith(f"herd Boto3/{boto3.__version__} Python/")
    assert re.fullmatch(r"herd( [A-Za-z0-9!$%&'*+\-.^_`|~]+/[A-Za-z0-9!$%&'*+\-.^_`|~]*)+", USER_AGENT)


def test_a_user_agent_part_holds_only_what_botocore_lets_into_one() -> None:
    # Given a kernel whose name and release hold spaces, a slash, CR LF and non-ASCII letters
    agent = user_agent([("My OS", "6.1 custom/é\r\nX-Injected: 1"), ("Python", "3.11.7")])
    # Then they stay inside their one part: no header can be injected, no encoding fails
    assert agent == "herd My-OS/6.1-custom----X-Injected--1 Python/3.11.7"
    agent.encode("ascii")
