"""bench/s3_requests.py: S3 calls sorted into what a datum spends them on, and the note."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest

from tests.bench.loader import load_bench

s3_requests = load_bench("s3_requests")


@pytest.mark.parametrize(("operation", "key", "kind"), [
    ("PutObject", "jobs/j1/attempts/d1/1", "attempt claim"),
    ("PutObject", "jobs/j1/attempts/d1/12", "attempt claim"),
    ("PutObject", "jobs/j1/attempts/d1/1.given_back", "attempt checks"),
    ("HeadObject", "jobs/j1/attempts/d1/1.restarted", "attempt checks"),
    ("ListObjectsV2", "jobs/j1/attempts/d1/", "attempt checks"),
    ("GetObject", "jobs/j1/attempts/d1/1", "attempt checks"),
    ("PutObject", "jobs/j1/results/d1", "result"),
    ("GetObject", "jobs/j1/results/d1", "other"),
    ("GetObject", "jobs/j1/status", "job status"),
    ("PutObject", "jobs/j1/status", "job status"),
    ("GetObject", "packs/ab/abcdef", "input pack"),
    ("ListObjectsV2", "pipelines/", "listing"),
    ("GetObject", "repos/in/branches/master", "other"),
    ("PutObject", "jobs/j1/results/d1/x", "other"),
    ("PutObject", "xjobs/j1/attempts/d1/1", "other"),
])
def test_request_kind(operation: str, key: str, kind: str) -> None:
    assert s3_requests.request_kind(operation, key) == kind


def test_note_gives_each_kind_a_datum_largest_first() -> None:
    kinds = Counter({"result": 500, "attempt claim": 500, "job status": 66, "input pack": 30, "other": 1})
    note = s3_requests.requests_note(kinds, 500)
    assert note == ("a datum made 2.19 S3 requests (counted in this run: result 1.00, attempt claim 1.00, "
                    "job status 0.13, input pack 0.06)")  # "other" at 0.002 a datum is left out
    assert s3_requests.requests_note(Counter(), 500) == "S3 requests not counted"
    assert s3_requests.requests_note(kinds, 0) == "S3 requests not counted"


class _Store:
    """Stands in for S3ObjectStore.watch_requests (the real one: tests/storage/test_s3_watch.py)."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[str, str], None]] = []

    def watch_requests(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback)

    def call(self, operation: str, key: str) -> None:
        for callback in list(self.callbacks):
            callback(operation, key)


def test_counting_covers_the_block_only_from_any_thread() -> None:
    store, count = _Store(), s3_requests.RequestCount()
    store.call("PutObject", "jobs/j/results/before")
    with count.watching(store):
        threads = [threading.Thread(target=lambda: [store.call("PutObject", f"jobs/j/results/{i}")
                                                    for i in range(500)]) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    store.call("PutObject", "jobs/j/results/after")
    assert count.kinds == Counter({"result": 2000})
    assert store.callbacks == []


def test_a_store_that_is_not_s3_is_not_counted() -> None:
    count = s3_requests.RequestCount()
    with count.watching(object()):
        pass
    assert count.kinds == Counter()
