"""One behaviour suite for every ObjectStore: memory, local folder and S3 (moto over HTTP).

The S3 leg runs on the single-threaded moto server so conditional-write races are
deterministic. S3-only behaviour (unreachable endpoint, bucket creation) is at the end.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from storage.errors import InvalidArgument, NotFound, ObjectNotFound, StorageUnavailable
from storage.objects import ObjectStore
from tests.fakes import ShortReads
from tests.fixtures.services import free_port

RACERS = 8


def race(count: int, attempt: Callable[[int], bool]) -> list[int]:
    """Run `attempt(i)` on `count` threads released together; the indexes that returned True."""
    barrier = threading.Barrier(count)
    wins: list[int] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        barrier.wait()
        if attempt(index):
            with lock:
                wins.append(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return wins


def test_put_get_and_overwrite(object_store: ObjectStore) -> None:
    # Given a key written once; When it is overwritten; Then get returns the latest body
    object_store.put("a/b.txt", b"one")
    assert object_store.get("a/b.txt") == b"one"
    object_store.put("a/b.txt", b"two")
    assert object_store.get("a/b.txt") == b"two"
    assert object_store.exists("a/b.txt")
    # And an empty body is a body
    object_store.put("empty", b"")
    assert object_store.get("empty") == b"" and object_store.exists("empty")


def test_missing_key_raises_object_not_found_naming_it(object_store: ObjectStore, tmp_path: Path) -> None:
    # Given an empty store; When a missing key is read in every way
    for read in (
        lambda: object_store.get("no/such"),
        lambda: object_store.open("no/such"),
        lambda: object_store.get_file("no/such", tmp_path / "dest"),
    ):
        # Then ObjectNotFound names the key
        with pytest.raises(ObjectNotFound, match="no/such"):
            read()
    # And nothing was left at the destination, and the other reads say "absent"
    assert [p.name for p in tmp_path.iterdir() if p.name != "store"] == []
    assert not object_store.exists("no/such")
    assert object_store.read_versioned("no/such") is None
    assert object_store.local_path("no/such") is None


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "../x", "a/./b", "a/"])
def test_invalid_keys_are_refused(object_store: ObjectStore, key: str) -> None:
    # Given a key with an empty, '.' or '..' segment or a leading slash; Then writes refuse it
    with pytest.raises(InvalidArgument):
        object_store.put(key, b"x")


def test_put_if_absent_creates_once(object_store: ObjectStore) -> None:
    # Given a key created create-only; When created again; Then False and the first body stays
    assert object_store.put_if_absent("k", b"first") is True
    assert object_store.put_if_absent("k", b"second") is False
    assert object_store.get("k") == b"first"


def test_put_if_absent_race_has_one_winner(object_store: ObjectStore) -> None:
    # Given racers creating the same key at once
    wins = race(RACERS, lambda i: object_store.put_if_absent("race/done", f"writer {i}".encode()))
    # Then exactly one won, and the body is the winner's
    assert len(wins) == 1
    assert object_store.get("race/done") == f"writer {wins[0]}".encode()


def test_put_chunks_if_absent_writes_the_chunks_joined_once(object_store: ObjectStore) -> None:
    # Given a record written from a generator of chunks, some empty
    chunks = (part for part in (b"{", b"", b'"a":', b"1", b"}"))
    # Then the key holds them joined, and a second chunked or whole write loses
    assert object_store.put_chunks_if_absent("rec", chunks) is True
    assert object_store.get("rec") == b'{"a":1}'
    assert object_store.put_chunks_if_absent("rec", iter([b"other"])) is False
    assert object_store.put_if_absent("rec", b"other") is False
    assert object_store.get("rec") == b'{"a":1}'
    assert object_store.put_chunks_if_absent("empty", iter(())) is True
    assert object_store.get("empty") == b""


def test_put_chunks_if_absent_of_a_body_bigger_than_any_buffer(object_store: ObjectStore) -> None:
    # Given 9 MiB in 1 MiB chunks: S3 spools it to a file (over 8 MiB) and PUTs that file
    chunks = [bytes([n]) * (1 << 20) for n in range(9)]
    assert object_store.put_chunks_if_absent("big", iter(chunks)) is True
    assert object_store.get("big") == b"".join(chunks)
    assert object_store.put_chunks_if_absent("big", iter(chunks[::-1])) is False
    assert object_store.get("big") == b"".join(chunks)


def test_put_chunks_if_absent_race_has_one_winner(object_store: ObjectStore) -> None:
    wins = race(RACERS, lambda i: object_store.put_chunks_if_absent("race/plan", iter([b"writer ", str(i).encode()])))
    assert len(wins) == 1
    assert object_store.get("race/plan") == f"writer {wins[0]}".encode()


def test_compare_and_set_semantics(object_store: ObjectStore) -> None:
    # Given create-only CAS on a missing key: it wins once
    assert object_store.compare_and_set("ref", None, b"gen 1") is True
    assert object_store.compare_and_set("ref", None, b"gen 1 again") is False
    body, token = object_store.read_versioned("ref")  # type: ignore[misc]
    assert body == b"gen 1"
    # When the current token is given: the write wins, and that token is now stale
    assert object_store.compare_and_set("ref", token, b"gen 2") is True
    assert object_store.compare_and_set("ref", token, b"gen 3 from stale") is False
    assert object_store.get("ref") == b"gen 2"
    # And a token for a key that is gone loses too
    object_store.delete("ref")
    assert object_store.compare_and_set("ref", token, b"gen 4") is False
    assert not object_store.exists("ref")


def test_aba_never_wins_when_bodies_differ(object_store: ObjectStore) -> None:
    # Given a token read at generation 1, then two more writes (bodies carry a generation)
    object_store.put("ref", b'{"head":"A","generation":1}')
    _, stale = object_store.read_versioned("ref")  # type: ignore[misc]
    for generation, head in ((2, "B"), (3, "A")):
        _, current = object_store.read_versioned("ref")  # type: ignore[misc]
        body = f'{{"head":"{head}","generation":{generation}}}'.encode()
        assert object_store.compare_and_set("ref", current, body)
    # When the stale token is used, though the head is back to "A"; Then it loses
    assert object_store.compare_and_set("ref", stale, b'{"head":"C","generation":2}') is False


def test_compare_and_set_race_has_one_winner(object_store: ObjectStore) -> None:
    # Given racers that all read the same token
    object_store.put("ref", b"gen 0")
    _, token = object_store.read_versioned("ref")  # type: ignore[misc]
    # When each tries to replace it with its own body
    wins = race(RACERS, lambda i: object_store.compare_and_set("ref", token, f"gen 1 by {i}".encode()))
    # Then one wins and its body is the one stored
    assert len(wins) == 1
    assert object_store.get("ref") == f"gen 1 by {wins[0]}".encode()


KEYS = ["a-c", "a/b", "a/c/d", "a/c/e", "ab", "b", "z/\u00e9t\u00e9"]


def test_list_is_sorted_and_prefix_matched(object_store: ObjectStore) -> None:
    # Given keys written out of order
    for key in reversed(KEYS):
        object_store.put(key, key.encode())
    # Then list is sorted by key and `prefix` is a plain string prefix
    assert list(object_store.list("")) == sorted(KEYS)
    assert list(object_store.list("a")) == ["a-c", "a/b", "a/c/d", "a/c/e", "ab"]
    assert list(object_store.list("a/")) == ["a/b", "a/c/d", "a/c/e"]
    assert list(object_store.list("a/c/d")) == ["a/c/d"]
    assert list(object_store.list("nothing/")) == []


def test_list_children_one_level(object_store: ObjectStore) -> None:
    # Given a small tree
    for key in KEYS:
        object_store.put(key, b"x")
    # Then children are one level deep, folders end in '/', and 'a' means the folder 'a/'
    assert object_store.list_children("") == ["a-c", "a/", "ab", "b", "z/"]
    assert object_store.list_children("a") == ["b", "c/"]
    assert object_store.list_children("a/") == ["b", "c/"]
    assert object_store.list_children("a/c") == ["d", "e"]
    assert object_store.list_children("missing") == []


def test_delete_removes_only_the_key(object_store: ObjectStore) -> None:
    # Given two keys in a folder and one in a sub-folder
    for key in ("d/one", "d/two", "d/sub/three"):
        object_store.put(key, b"x")
    # When keys are deleted (and a missing one, which is fine)
    object_store.delete("d/one")
    object_store.delete("d/sub/three")
    object_store.delete("d/never")
    # Then only they are gone, and an emptied folder is no longer a child
    assert not object_store.exists("d/one")
    assert list(object_store.list("d/")) == ["d/two"]
    assert object_store.list_children("d") == ["two"]


def test_put_file_and_get_file_stream(object_store: ObjectStore, tmp_path: Path) -> None:
    # Given a file over the 8 MiB multipart threshold
    source = tmp_path / "big.bin"
    data = os.urandom(9 * 1024 * 1024 + 17)
    source.write_bytes(data)
    # When it goes in and comes back out
    object_store.put_file("files/big.bin", source)
    dest = tmp_path / "out" / "big.bin"
    dest.parent.mkdir()
    object_store.get_file("files/big.bin", dest)
    # Then the bytes are equal and no temp file is left beside the destination
    assert dest.read_bytes() == data
    assert [p.name for p in dest.parent.iterdir()] == ["big.bin"]


def test_get_file_replaces_an_existing_file(object_store: ObjectStore, tmp_path: Path) -> None:
    object_store.put("k", b"new body")
    dest = tmp_path / "dest"
    dest.write_bytes(b"an old and longer body")
    object_store.get_file("k", dest)
    assert dest.read_bytes() == b"new body"


def test_put_stream_from_a_non_seekable_stream(object_store: ObjectStore) -> None:
    # Given a pipe-like stream with short reads, past the multipart threshold
    data = os.urandom(8 * 1024 * 1024 + 3)
    # When streamed in; Then the stored body is exact
    object_store.put_stream("streamed", ShortReads(data, step=65_537))  # type: ignore[arg-type]
    assert object_store.get("streamed") == data


def test_open_reads_in_pieces(object_store: ObjectStore) -> None:
    data = os.urandom(300_000)
    object_store.put("o", data)
    with object_store.open("o") as reader:
        parts = [reader.read(65_536) for _ in range(5)]
        assert reader.read() == b""
    assert b"".join(parts) == data


def test_local_path_is_a_real_file_or_none(object_store: ObjectStore) -> None:
    object_store.put("lp/k", b"body")
    path = object_store.local_path("lp/k")
    if type(object_store).__name__ == "LocalObjectStore":
        assert path is not None and path.read_bytes() == b"body"
    else:
        assert path is None


def test_url_names_the_backend(object_store: ObjectStore) -> None:
    assert object_store.url.split("://")[0] in {"memory", "file", "s3"}


# -- S3 only -------------------------------------------------------------------------------


@pytest.mark.s3
def test_unreachable_endpoint_is_storage_unavailable_naming_it(aws_env: None) -> None:
    from storage.s3 import S3ObjectStore

    # Given an endpoint on a closed loopback port (one attempt, so the test is fast)
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = S3ObjectStore("herd-unreachable", "", endpoint, max_attempts=1, connect_timeout=1)
    # When anything is asked; Then StorageUnavailable names the endpoint and the bucket
    with pytest.raises(StorageUnavailable) as caught:
        store.put("k", b"v")
    assert endpoint in str(caught.value) and "herd-unreachable" in str(caught.value)
    assert caught.value.exit_code == 6


@pytest.mark.s3
def test_missing_bucket_is_created_on_first_use(s3_store: Callable[..., Any]) -> None:
    from tests.fixtures.s3 import fresh_bucket

    # Given a bucket that does not exist yet
    bucket = fresh_bucket()
    # When a store on it writes; Then a second store on the same bucket reads the key
    s3_store("one", bucket=bucket).put("k", b"v")
    assert s3_store("one", bucket=bucket).get("k") == b"v"
    # And two prefixes in one bucket do not see each other
    assert list(s3_store("two", bucket=bucket).list("")) == []


@pytest.mark.s3
def test_access_denied_on_bucket_creation_names_bucket_and_endpoint(s3_store: Callable[..., Any]) -> None:
    store = s3_store()

    # Given a server that refuses CreateBucket (injected with a botocore before-send hook)
    def deny(request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        return AWSResponse(request.url, 403, {}, _Raw(body))

    store._client.meta.events.register("before-send.s3.CreateBucket", deny)
    # When the store is first used; Then StorageUnavailable names the bucket and the endpoint
    with pytest.raises(StorageUnavailable) as caught:
        store.put("k", b"v")
    assert store.bucket in str(caught.value) and store.endpoint in str(caught.value)
    assert "denied" in str(caught.value)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


@pytest.mark.s3
def test_missing_local_source_is_not_found(s3_store: Callable[..., Any], tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="nope.bin"):
        s3_store().put_file("k", tmp_path / "nope.bin")


# -- local folder only ---------------------------------------------------------------------


def test_local_key_under_another_key_is_refused(tmp_path: Path) -> None:
    from storage.local import LocalObjectStore

    # Given a key 'a'; When 'a/b' is written (a file cannot also be a folder); Then a clear error
    store = LocalObjectStore(tmp_path)
    store.put("a", b"x")
    with pytest.raises(InvalidArgument, match="a/b"):
        store.put("a/b", b"y")


def test_local_temp_and_lock_files_never_show(tmp_path: Path) -> None:
    from storage.local import LocalObjectStore

    # Given CAS writes (lock files) and a crashed writer's temp file
    store = LocalObjectStore(tmp_path)
    store.compare_and_set("refs/main", None, b"1")
    (tmp_path / "refs" / ".~herd-tmp-crashed").write_bytes(b"half")
    # Then listings show keys only
    assert list(store.list("")) == ["refs/main"]
    assert store.list_children("") == ["refs/"]


@pytest.mark.slow
def test_local_list_of_100_000_keys_returns_them_all_sorted(tmp_path: Path) -> None:
    # (how fast: bench/storage.py's "list 100,000 keys" row)
    from storage.local import LocalObjectStore

    # Given 100,000 keys in 256 folders (laid down directly, not through the store)
    expected = []
    for folder in range(256):
        base = tmp_path / "blobs" / f"{folder:02x}"
        base.mkdir(parents=True)
        for index in range(folder, 100_000, 256):
            (base / f"{index:06d}").write_bytes(b"")
            expected.append(f"blobs/{folder:02x}/{index:06d}")
    store = LocalObjectStore(tmp_path)
    # When listed; Then all come back, sorted, each once
    keys = list(store.list("blobs/"))
    assert keys == sorted(expected)


# -- factory: URLs and sources into instances ----------------------------------------------


def test_factory_builds_each_backend(tmp_path: Path, moto_server_serial: Any) -> None:
    from storage.factory import open_object_store
    from storage.local import LocalObjectStore
    from storage.objects import MemoryObjectStore
    from storage.s3 import S3ObjectStore
    from storage.settings import StorageSettings

    local = open_object_store(StorageSettings(storage=f"file://{tmp_path}/herd"))
    assert isinstance(local, LocalObjectStore) and local.root == tmp_path / "herd"
    memory = open_object_store(StorageSettings(storage="memory://factory-test"))
    memory.put("k", b"v")
    assert isinstance(memory, MemoryObjectStore)
    assert open_object_store(StorageSettings(storage="memory://factory-test")).get("k") == b"v"
    settings = StorageSettings(storage="s3://herd-factory/some/prefix", s3_endpoint_url=moto_server_serial.url)
    s3 = open_object_store(settings)
    assert isinstance(s3, S3ObjectStore) and s3.url == "s3://herd-factory/some/prefix/"
    s3.put("k", b"v")
    assert s3.get("k") == b"v"


@pytest.mark.parametrize("url", ["ftp://x/y", "/plain/path", "file://host/path", "s3:///nobucket"])
def test_factory_refuses_bad_urls_naming_them(url: str) -> None:
    from storage.factory import open_object_store
    from storage.settings import StorageSettings

    with pytest.raises(InvalidArgument, match=url.replace("/", ".")):
        open_object_store(StorageSettings(storage=url))


def test_open_source_local_http_and_s3(tmp_path: Path, s3_store: Callable[..., Any]) -> None:
    import http.server

    from storage.factory import open_source
    from storage.settings import StorageSettings

    # A local file, and a missing one named in the error
    (tmp_path / "in.txt").write_bytes(b"local body")
    with open_source(str(tmp_path / "in.txt")) as stream:
        assert stream.read() == b"local body"
    with pytest.raises(NotFound, match="missing.txt"):
        open_source(str(tmp_path / "missing.txt"))
    # An http URL served from tmp_path, and a 404 named in the error
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        with open_source(f"{base}/in.txt") as stream:
            assert stream.read() == b"local body"
        with pytest.raises(NotFound, match="nope.txt"):
            open_source(f"{base}/nope.txt")
    finally:
        server.shutdown()
    # An s3:// URL through the settings' endpoint
    store = s3_store()
    store.put("dir/obj.bin", b"s3 body")
    settings = StorageSettings(storage="memory://", s3_endpoint_url=store.endpoint)
    with open_source(f"s3://{store.bucket}/dir/obj.bin", settings) as stream:
        assert stream.read() == b"s3 body"
    with pytest.raises(NotFound, match="absent.bin"):
        open_source(f"s3://{store.bucket}/absent.bin", settings)


def test_unreachable_http_source_names_the_url() -> None:
    from storage.factory import open_source

    url = f"http://127.0.0.1:{free_port()}/x"
    with pytest.raises(StorageUnavailable, match=url):
        open_source(url)


@pytest.mark.s3
def test_a_resent_conditional_put_that_already_landed_still_wins(s3_store: Callable[..., Any]) -> None:
    # Given a create-only PUT whose first attempt lands on the server but whose answer is lost
    # (simulated: the hook writes the body itself, then answers 500 so botocore resends)
    store = s3_store()
    twin = s3_store(bucket=store.bucket)
    calls: list[int] = []

    def landed_then_lost(request: Any, **_: Any) -> Any:
        if calls:
            return None  # the resend goes to the server for real
        calls.append(1)
        twin.put("ref", b"gen 1 by me")
        from botocore.awsrequest import AWSResponse

        return AWSResponse(request.url, 500, {}, _Raw(b"<Error><Code>InternalError</Code></Error>"))

    store.put("warm", b"")  # bucket made and conditional writes checked before the hook is armed
    store._client.meta.events.register("before-send.s3.PutObject", landed_then_lost)
    # When the resend fails its precondition (412) against our own write
    won = store.put_if_absent("ref", b"gen 1 by me")
    # Then the store reports the write as ours; a different body would have lost
    assert calls and won is True
    assert store.put_if_absent("ref", b"gen 1 by someone else") is False


# -- garbage-collection capabilities: write times, reserved keys, incomplete uploads -------


def test_list_with_times_gives_sizes_and_store_clock_times(object_store: ObjectStore) -> None:
    from datetime import datetime, timedelta, timezone

    # Given keys written between two instants of this machine's clock
    before = datetime.now(timezone.utc)
    for key, body in (("t/b", b"12345"), ("t/a", b""), ("u", b"x")):
        object_store.put(key, body)
    after = datetime.now(timezone.utc)
    # When listed with times; Then sorted, exact sizes, and the same keys as list()
    infos = list(object_store.list_with_times("t/"))
    assert [(i.key, i.size) for i in infos] == [("t/a", 0), ("t/b", 5)]
    assert [i.key for i in object_store.list_with_times("")] == list(object_store.list(""))
    # And times are timezone-aware and near the writes (S3 rounds down to the second)
    for info in infos:
        assert info.modified.tzinfo is not None
        assert before - timedelta(seconds=2) <= info.modified <= after + timedelta(seconds=2)
    # And a rewrite moves the time forward, never back
    first = infos[1].modified
    object_store.put("t/b", b"again")
    assert next(iter(object_store.list_with_times("t/b"))).modified >= first


def test_reserved_keys_are_hidden_unless_asked_for(object_store: ObjectStore) -> None:
    # Given a data key and one of the store's own keys under _herd/
    object_store.put("data/k", b"v")
    object_store.put("_herd/gc/mark", b"m")
    # Then whole-store listings show data only
    assert list(object_store.list("")) == ["data/k"]
    assert object_store.list_children("") == ["data/"]
    assert [i.key for i in object_store.list_with_times("")] == ["data/k"]
    # And a listing that names _herd sees it (and the key reads as any other)
    assert list(object_store.list("_herd/gc/")) == ["_herd/gc/mark"]
    assert "gc/" in object_store.list_children("_herd/")
    assert [i.key for i in object_store.list_with_times("_herd/gc/")] == ["_herd/gc/mark"]
    assert object_store.get("_herd/gc/mark") == b"m"


def test_a_fresh_store_has_no_incomplete_uploads(object_store: ObjectStore, tmp_path: Path) -> None:
    # Given finished writes of every kind, small and multipart-sized
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * 1024 * 1024))
    object_store.put("a", b"x")
    object_store.put_if_absent("b", b"y")
    object_store.put_file("c", big)
    # Then nothing is reported as left unfinished
    assert [u.key for u in object_store.incomplete_uploads()] == []


def test_local_killed_write_is_an_incomplete_upload_and_abort_removes_it(tmp_path: Path) -> None:
    from storage.local import LocalObjectStore
    from storage.objects import IncompleteUpload

    # Given a temp file a killed writer left beside a key, and a lock file of a CAS
    store = LocalObjectStore(tmp_path)
    store.put("tmp/blobs/keep", b"a key, not a temp file")
    (tmp_path / "tmp" / "blobs" / ".~herd-tmp-killed").write_bytes(b"half" * 1000)
    store.compare_and_set("ref", None, b"1")
    # When listed; Then only the temp file is reported, with its size
    found = list(store.incomplete_uploads())
    assert [(u.key, u.size) for u in found] == [("tmp/blobs/.~herd-tmp-killed", 4000)]
    # And abort removes it, and only it; a second abort is fine
    store.abort_upload(found[0])
    store.abort_upload(found[0])
    assert list(store.incomplete_uploads()) == []
    assert list(store.list("")) == ["ref", "tmp/blobs/keep"]
    # And abort refuses anything that is not a temp file inside the store
    for bad in ("tmp/blobs/keep", "../outside/.~herd-tmp-x", "ref"):
        with pytest.raises(InvalidArgument):
            store.abort_upload(IncompleteUpload(bad, bad, 0, found[0].started))
    assert store.get("tmp/blobs/keep") == b"a key, not a temp file"


@pytest.mark.s3
def test_s3_multipart_left_open_is_an_incomplete_upload_and_abort_frees_it(s3_store: Callable[..., Any]) -> None:
    # Given a multipart upload started with one 5 MiB part and never completed (a killed writer)
    store = s3_store("herd")
    store.put("warm", b"")
    client, full = store._client, store.prefix + "blobs/ab/half"
    upload = client.create_multipart_upload(Bucket=store.bucket, Key=full)["UploadId"]
    client.upload_part(Bucket=store.bucket, Key=full, UploadId=upload, PartNumber=1, Body=b"p" * (5 << 20))
    # And one under another prefix of the same bucket, which is not this store's
    other = client.create_multipart_upload(Bucket=store.bucket, Key="elsewhere/x")["UploadId"]
    # When listed; Then it is reported with its key below the prefix and its size
    found = list(store.incomplete_uploads())
    assert [(u.key, u.upload_id, u.size) for u in found] == [("blobs/ab/half", upload, 5 << 20)]
    # And abort frees it (twice is fine); the other prefix's upload is untouched
    store.abort_upload(found[0])
    store.abort_upload(found[0])
    assert list(store.incomplete_uploads()) == []
    left = client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    assert [u["UploadId"] for u in left] == [other]
