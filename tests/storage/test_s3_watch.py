"""S3ObjectStore.watch_requests: every S3 call a store makes, named, until it is stopped."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.fixtures.s3 import S3StoreFactory

pytestmark = pytest.mark.s3


def test_each_call_is_seen_with_its_key_below_the_prefix(s3_store: S3StoreFactory, tmp_path: Path) -> None:
    # Given a store under a prefix, used once so its bucket and conditional-write checks are done
    store = s3_store("team/a")
    store.put("warm", b"x")
    seen: list[tuple[str, str]] = []
    stop = store.watch_requests(lambda operation, key: seen.append((operation, key)))
    # When it writes create-only, reads, lists and uploads a file through the transfer manager
    assert store.put_if_absent("jobs/j/attempts/d/1", b"{}")
    assert store.get("jobs/j/attempts/d/1") == b"{}"
    assert store.list_children("jobs/j/attempts/") == ["d/"]
    source = tmp_path / "f"
    source.write_bytes(b"y" * 10)
    store.put_file("blobs/f", source)
    stop()
    store.get("warm")
    # Then each call was seen once, in order, keys as the store's callers name them
    assert seen == [
        ("PutObject", "jobs/j/attempts/d/1"),
        ("GetObject", "jobs/j/attempts/d/1"),
        ("ListObjectsV2", "jobs/j/attempts/"),
        ("PutObject", "blobs/f"),
    ]


def test_a_refused_call_is_seen_and_two_watchers_are_independent(s3_store: S3StoreFactory) -> None:
    # Given two watchers on one store, the first stopped halfway
    store = s3_store()
    store.put("k", b"1")
    first: list[str] = []
    second: list[str] = []
    stop_first = store.watch_requests(lambda operation, key: first.append(operation))
    stop_second = store.watch_requests(lambda operation, key: second.append(operation))
    # When a create-only PUT is refused (the key exists), and a read follows the first's stop
    assert store.put_if_absent("k", b"2") is False
    stop_first()
    assert store.get("k") == b"1"
    stop_second()
    # Then a refused call counts as a request too, and each watcher saw its own span
    assert first == ["PutObject"]
    assert second == ["PutObject", "GetObject"]


def test_calls_from_many_threads_are_all_seen(s3_store: S3StoreFactory) -> None:
    # Given a counting watcher (with its own lock, as the benchmarks keep one)
    store = s3_store()
    store.put("warm", b"x")
    lock, counts = threading.Lock(), {"n": 0}

    def count(operation: str, key: str) -> None:
        with lock:
            counts["n"] += 1

    stop = store.watch_requests(count)
    # When 4 threads each make 10 calls
    def work(t: int) -> None:
        for i in range(10):
            store.put(f"t{t}/{i}", b"x")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop()
    # Then every one of the 40 was seen
    assert counts["n"] == 40
