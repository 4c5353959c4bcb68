"""S3 faults through a fault-injecting proxy (fault matrix row 4).

The proxy (tests/fixtures/s3_faults.py) sits between herd and the moto server and answers 500
InternalError, 503 SlowDown, connection resets and truncated bodies by rule. The store-level
tests pin what one S3 call does (botocore's standard retry mode, a finite max_attempts; a
truncated body is an outage, never bytes). The cluster tests run real `herd scheduler` and
`herd worker` processes pointed at the proxy (HERD_S3_ENDPOINT_URL): transient faults leave the
outputs byte-equal to an undisturbed run; a persistent outage fails the job naming the outage,
with the datums' error `storage_unavailable` (not a user-code error) and no try used.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from scheduler.job_records import JobState
from storage.blobs import BlobStore
from storage.errors import ObjectNotFound, StorageUnavailable
from storage.layout import blob_key
from storage.s3 import S3ObjectStore
from tests.distributed.conftest import (
    Cluster,
    FaultMatrix,
    all_attempts,
    byte_job,
    check_outputs,
    output_bytes,
    results_of,
    start_byte_job,
)
from tests.fixtures.s3 import fresh_bucket
from tests.fixtures.s3_faults import FaultRule, S3FaultProxy, s3_fault_proxy  # noqa: F401 - fixture

pytestmark = [pytest.mark.s3]


def cluster_test(test):  # noqa: ANN001, ANN201 - a decorator
    """The marks of a test that runs herd processes on Redis and Docker."""
    return pytest.mark.redis(pytest.mark.docker(pytest.mark.slow(test)))


MAX_ATTEMPTS = 3  # S3ObjectStore's default: botocore's standard retry mode


@pytest.fixture
def store(s3_fault_proxy: S3FaultProxy) -> S3ObjectStore:
    """A store on a fresh bucket, reached through the proxy."""
    return S3ObjectStore(fresh_bucket(), "herd", s3_fault_proxy.url)


# ---- one S3 call ----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["500", "503", "reset"])
def test_transient_faults_are_retried_within_max_attempts(store: S3ObjectStore, s3_fault_proxy: S3FaultProxy,
                                                          fault: str) -> None:
    store.put("a/key", b"payload")
    s3_fault_proxy.add(FaultRule(fault, key=r"/a/key$", count=MAX_ATTEMPTS - 1))
    assert store.get("a/key") == b"payload"
    assert [s.fault for s in s3_fault_proxy.seen("GET", r"/a/key$")] == [fault] * (MAX_ATTEMPTS - 1) + [None]


@pytest.mark.parametrize("fault", ["500", "503", "reset"])
def test_a_persistent_fault_is_an_outage_after_exactly_max_attempts(store: S3ObjectStore,
                                                                    s3_fault_proxy: S3FaultProxy, fault: str) -> None:
    store.put("a/key", b"payload")
    s3_fault_proxy.add(FaultRule(fault, key=r"/a/key$"))
    with pytest.raises(StorageUnavailable) as caught:
        store.get("a/key")
    assert s3_fault_proxy.url in str(caught.value)  # the outage names the endpoint
    assert len(s3_fault_proxy.seen("GET", r"/a/key$")) == MAX_ATTEMPTS  # bounded: no endless retry
    # and an outage is never read as "not found"
    assert not isinstance(caught.value, ObjectNotFound)


def test_a_throttled_write_is_retried_and_lands_once(store: S3ObjectStore, s3_fault_proxy: S3FaultProxy) -> None:
    s3_fault_proxy.add(FaultRule("503", key=r"/w/key$", method="PUT", count=1))
    assert store.put_if_absent("w/key", b"first") is True
    assert store.get("w/key") == b"first"
    assert store.put_if_absent("w/key", b"second") is False


def test_a_write_whose_answer_is_lost_is_not_a_lost_race(store: S3ObjectStore, s3_fault_proxy: S3FaultProxy) -> None:
    # The create-only PUT lands, then its answer is a 503: botocore resends, gets 412 against
    # its own write, and the store must see that the write was ours.
    s3_fault_proxy.add(FaultRule("503", key=r"/w/mine$", method="PUT", count=1, after=True))
    assert store.put_if_absent("w/mine", b"only body") is True
    assert store.get("w/mine") == b"only body"


@pytest.mark.parametrize("size", [100, 9 * 1024 * 1024])  # in memory, and spooled to a file
@pytest.mark.parametrize("after", [False, True])
def test_a_chunked_write_resent_after_a_fault_sends_its_whole_body(
    store: S3ObjectStore, s3_fault_proxy: S3FaultProxy, size: int, after: bool,
) -> None:
    # A resend must rewind the spooled body: from where the first attempt left it, the resend
    # would send nothing (or fail), and the key would hold short bytes.
    data = os.urandom(size)
    s3_fault_proxy.add(FaultRule("503", key=r"/w/plan$", method="PUT", count=1, after=after))
    chunks = (data[i:i + (1 << 20)] for i in range(0, size, 1 << 20))
    assert store.put_chunks_if_absent("w/plan", chunks) is True
    assert hashlib.sha256(store.get("w/plan")).digest() == hashlib.sha256(data).digest()
    assert store.put_chunks_if_absent("w/plan", iter([b"another plan"])) is False


@pytest.mark.parametrize("size", [100, 6 * 1024 * 1024])
def test_a_truncated_body_is_never_accepted(store: S3ObjectStore, s3_fault_proxy: S3FaultProxy, size: int) -> None:
    data = os.urandom(size)
    blobs = BlobStore(store)
    digest, _ = blobs.put_bytes(data) if size <= 4 << 20 else blobs.put_stream(_Stream(data))
    s3_fault_proxy.add(FaultRule("truncate", key=blob_key(digest), method="GET"))
    for read in (lambda d: _read_all(blobs, d), lambda d: store.get(blob_key(d))):
        with pytest.raises(StorageUnavailable):  # an outage: retried later, never short bytes
            read(digest)
    assert len(s3_fault_proxy.injected) >= 2
    s3_fault_proxy.clear()
    assert hashlib.sha256(_read_all(blobs, digest)).hexdigest() == digest


def _read_all(blobs: BlobStore, digest: str) -> bytes:
    with blobs.open(digest) as reader:
        return reader.read()


class _Stream:
    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._at + size
        chunk, self._at = self._data[self._at:end], min(end, len(self._data))
        return chunk


def test_a_slow_server_is_waited_for(store: S3ObjectStore, s3_fault_proxy: S3FaultProxy) -> None:
    store.put("s/key", b"slow")
    s3_fault_proxy.add(FaultRule("delay", key=r"/s/key$", method="GET", count=1, delay=0.5))
    assert store.get("s/key") == b"slow"
    assert [s.fault for s in s3_fault_proxy.seen("GET", r"/s/key$")] == ["delay"]  # no resend


def test_listing_and_heads_survive_faults(store: S3ObjectStore, s3_fault_proxy: S3FaultProxy) -> None:
    for i in range(5):
        store.put(f"l/{i}", b"x")
    s3_fault_proxy.add(FaultRule("503", method="GET", key=r"^/[^/]+/?$", count=1),  # the bucket: a listing
                       FaultRule("reset", method="HEAD", count=1), FaultRule("truncate", method="GET", count=1))
    assert list(store.list("l/")) == [f"l/{i}" for i in range(5)]
    assert store.exists("l/3") and not store.exists("l/9")
    assert {s.fault for s in s3_fault_proxy.injected} >= {"503", "reset", "truncate"}


# ---- a cluster behind the proxy -------------------------------------------------------------


@cluster_test
def test_transient_s3_faults_corrupt_no_output(cluster: Cluster, s3_fault_proxy: S3FaultProxy,
                                              fault_matrix: FaultMatrix) -> None:
    # Given every herd process reaching S3 through the proxy, which injects every kind of fault
    # now and then (a few in a row now and then: past botocore's retries, into herd's own)
    cluster.env["HERD_S3_ENDPOINT_URL"] = s3_fault_proxy.url
    s3_fault_proxy.add(
        FaultRule("truncate", method="GET", key=r"/blobs/", count=3),  # the first reads of inputs
        FaultRule("503", method="PUT", key=r"/blobs/", count=3),  # the first output uploads
        FaultRule("503", probability=0.05), FaultRule("500", probability=0.03),
        FaultRule("reset", probability=0.03), FaultRule("truncate", method="GET", probability=0.03),
    )
    cluster.scheduler()
    workers = [cluster.worker("w1"), cluster.worker("w2", concurrency=2)]
    cluster.wait_ready(*workers)
    job = byte_job("s3f_in", "s3f", 16)
    # When a job runs
    job_id, commit = start_byte_job(cluster, job)
    cluster.flush(job.input_repo, commit, timeout=240)
    # Then it succeeds, and its output bytes equal an undisturbed run's (read from moto directly)
    state = cluster.jobs.inspect(job_id)[1].state
    out = cluster.pfs.inspect_commit(job.pipeline, "master")
    check = check_outputs(job, output_bytes(cluster.pfs, out))
    fault_matrix.add_check("S3 5xx/SlowDown/reset/truncated via proxy", check, state.value)
    assert state == JobState.JOB_SUCCESS, cluster.diagnose(cluster.jobs.inspect(job_id)[1].reason)
    assert check.equal and (check.lost, check.duplicated, check.extra) == (0, 0, ())
    assert {s.fault for s in s3_fault_proxy.injected} >= {"500", "503", "reset", "truncate"}
    assert all(w.alive for w in workers)


@cluster_test
def test_a_persistent_s3_outage_fails_the_job_naming_it(cluster: Cluster, s3_fault_proxy: S3FaultProxy,
                                                       fault_matrix: FaultMatrix) -> None:
    # Given workers whose every read of a blob fails (the scheduler reaches S3 directly)
    s3_fault_proxy.add(FaultRule("503", method="GET", key=r"/blobs/"))
    cluster.scheduler()
    worker_env = {"HERD_S3_ENDPOINT_URL": s3_fault_proxy.url, "HERD_OUTAGE_SECONDS": "5"}
    worker = cluster.start("w1", "worker", "--concurrency", "1", HERD_WORKER_ID="w1", **worker_env)
    cluster.wait_ready(worker)
    job = byte_job("out_in", "outage", 3)
    # When a job runs
    job_id, commit = start_byte_job(cluster, job)
    cluster.flush(job.input_repo, commit, timeout=180)
    # Then the job fails, and says it was an outage of storage, not user code
    status = cluster.jobs.inspect(job_id)[1]
    results = results_of(cluster.pfs, job_id)
    lost = len(job.names) - len(results)
    fault_matrix.add("S3 down for every blob GET (worker side)", len(job.names), lost, 0, status.state.value)
    assert status.state == JobState.JOB_FAILURE, cluster.diagnose(status.reason)
    assert "unavailable" in status.reason.lower() or "SlowDown" in status.reason, status.reason
    assert s3_fault_proxy.url in status.reason or "S3" in status.reason, status.reason
    assert results and all(r.error == "storage_unavailable" for r in results), [(r.error, r.reason) for r in results]
    assert all("HERD_OUTAGE_SECONDS" in r.reason or s3_fault_proxy.url in r.reason for r in results)
    # no try was used: every attempt the outage met was given back
    for attempts in all_attempts(cluster.pfs, job_id).values():
        assert attempts and all(a.given_back for a in attempts), attempts
    assert worker.alive
