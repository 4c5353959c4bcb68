"""Garbage collection (storage/gc.py, `herd garbage-collect`) on every backend.

Memory, the local folder and moto's S3 server over HTTP. Killed uploads are real `herd
put-file` processes SIGKILLed mid-upload; the concurrent case runs a writer thread against
repeated `--grace 0` runs and then reads every file of every commit back, hash-checked.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from storage.blobs import SMALL
from storage.errors import DataCorrupted, InvalidArgument
from storage.gc import (
    KINDS,
    Garbage,
    GcReport,
    Roots,
    collect_garbage,
    find_garbage,
    parse_grace,
)
from storage.layout import blob_key, manifest_key
from storage.model import Commit, FileEntry, Manifest
from storage.objects import ObjectInfo, ObjectStore
from storage.repos import Pfs
from tests.fixtures.services import wait_until

HERD = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "herd"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
ZERO = timedelta(0)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def settle_clock(store: ObjectStore) -> None:
    """Wait until the store's clock is past its newest object (S3 times are whole seconds), so a
    `--grace 0` run sees everything written so far as older than its mark."""
    newest = max((info.modified for info in store.list_with_times("")), default=None)
    if newest is None:
        return

    def moved() -> bool:
        store.put("_herd/tick", uuid.uuid4().bytes)
        return next(iter(store.list_with_times("_herd/tick"))).modified > newest

    assert wait_until(moved, timeout=15, interval=0.05), "the store's clock did not move"
    store.delete("_herd/tick")


def gc(store: ObjectStore, **options: Any) -> GcReport:
    """One run with no grace, after the store's clock has moved past every write so far; no
    settle wait (nothing writes meanwhile in these tests, except the concurrent one)."""
    settle_clock(store)
    return collect_garbage(store, options.pop("grace", ZERO), settle=options.pop("settle", 0.0), **options)


def blobs_in(store: ObjectStore) -> set[str]:
    return {key.rsplit("/", 1)[1] for key in store.list("blobs/")}


def check_every_commit(pfs: Pfs, repo: str, expected: dict[str, bytes] | None = None) -> int:
    """Read every file of every commit of `repo` back, checking its bytes against its hash and
    that every manifest and chunk blob is stored (an fsck-like walk). Returns files checked."""
    checked = 0
    for key in pfs.objects.list(f"repos/{repo}/commits/"):
        commit = Commit.from_bytes(pfs.objects.get(key))
        assert commit.manifest is None or pfs.objects.exists(manifest_key(commit.manifest)), key
        manifest = pfs.commits.manifest(commit.manifest)
        for path, entry in manifest.files.items():
            for chunk in entry.chunks:
                assert pfs.objects.exists(blob_key(chunk)), f"{repo}@{commit.id}:{path} lost blob {chunk}"
            with pfs.open_file(repo, commit.id, path) as reader:
                data = reader.read()
            assert len(data) == entry.size
            if len(entry.chunks) == 1:
                assert digest(data) == entry.chunks[0], f"{repo}@{commit.id}:{path} bytes differ"
            if expected is not None and path in expected:
                assert data == expected[path]
            checked += 1
    return checked


@pytest.fixture
def store(object_store: ObjectStore) -> ObjectStore:
    return object_store


# ---- pure rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0), ("30", 1800), ("90s", 90), ("30m", 1800), ("1h", 3600), ("1.5h", 5400), ("2d", 172800),
])
def test_parse_grace(text: str, seconds: int) -> None:
    assert parse_grace(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "-1", "1w", "abc", "1h30m", "9999d", "nan"])
def test_parse_grace_refuses_naming_the_text(text: str) -> None:
    with pytest.raises(InvalidArgument, match=f"grace '{text}'"):
        parse_grace(text)


def test_find_garbage_rules() -> None:
    old, young = NOW - timedelta(minutes=5), NOW
    kept, lost = "a" * 64, "b" * 64
    infos = [
        ObjectInfo(f"blobs/aa/{kept}", 1, old),  # reachable
        ObjectInfo(f"blobs/bb/{lost}", 2, old),  # unreachable, old: garbage
        ObjectInfo(f"blobs/cc/{'c' * 64}", 3, young),  # unreachable but written at the mark: kept
        ObjectInfo("blobs/zz/not-a-blob", 4, old),  # not a blob key: never touched
        ObjectInfo("manifests/m1", 5, old),  # reachable
        ObjectInfo("manifests/m2", 6, old),  # garbage
        ObjectInfo("tmp/blobs/x", 7, old),  # a temp key: garbage
        ObjectInfo("tmp/blobs/y", 8, young),  # a temp key being written: kept
        ObjectInfo("repos/gone/commits/c", 9, old),  # a deleted repo's record: garbage
        ObjectInfo("repos/live/commits/c", 10, old),  # a live repo's record: never garbage
        ObjectInfo("pipelines/p/info", 11, old),  # scheduler records: never garbage
    ]
    roots = Roots(manifests={"m1"}, blobs={kept})
    found = list(find_garbage(infos, roots, {"gone"}, cutoff=NOW))
    assert found == [
        Garbage("blobs", f"blobs/bb/{lost}", 2),
        Garbage("manifests", "manifests/m2", 6),
        Garbage("temp objects", "tmp/blobs/x", 7),
        Garbage("deleted-repo records", "repos/gone/commits/c", 9),
    ]


# ---- reachability on every backend --------------------------------------------------------------


def test_nothing_reachable_is_freed(store: ObjectStore) -> None:
    # Given history (a file deleted later stays in an older commit), a deleted branch whose
    # commit is still there by id, and an open commit holding a blob nothing else has
    pfs = Pfs(store)
    pfs.create_repo("data")
    old = pfs.put_file("data", "master", "/old", b"only in history")
    pfs.delete_file("data", "master", "/old")
    pfs.put_file("data", "dev", "/dev", b"on a branch about to go")
    pfs.delete_branch("data", "dev")
    opened = pfs.start_commit("data", "master")
    pfs.put_file("data", opened.id, "/pending", b"only in an open commit")
    before = blobs_in(store)
    # When GC runs with no grace at all
    report = gc(store)
    # Then nothing was freed, and every byte still reads
    assert report.total.count == 0 and report.total.bytes == 0
    assert blobs_in(store) == before
    assert pfs.open_file("data", old.id, "/old").read() == b"only in history"
    pfs.finish_commit("data", opened.id)
    assert pfs.open_file("data", "master", "/pending").read() == b"only in an open commit"
    check_every_commit(pfs, "data")


def test_deleting_a_repo_frees_its_data_but_not_what_another_repo_shares(store: ObjectStore) -> None:
    # Given two repos sharing one file, and one of them holding a small and a big file of its own
    pfs = Pfs(store)
    pfs.create_repo("gone")
    pfs.create_repo("kept")
    shared, small, big = b"shared by both repos", b"only in gone", os.urandom(SMALL + 1024)
    for repo in ("gone", "kept"):
        pfs.put_file(repo, "master", "/shared", shared)
    pfs.put_file("gone", "master", "/small", small)
    pfs.put_file("gone", "master", "/big", io.BytesIO(big))
    # When GC runs before the delete, with the default grace, and with none: nothing to free
    assert collect_garbage(store, settle=0).total.count == 0
    assert gc(store).total.count == 0
    # When the repo is deleted and GC runs with the default grace: still young, nothing freed
    pfs.delete_repo("gone", force=True)
    assert collect_garbage(store, settle=0).freed["blobs"].count == 0
    # When it runs with no grace
    report = gc(store)
    # Then exactly the repo's own blobs and manifests were freed, with their bytes
    assert report.freed["blobs"].count == 2
    assert report.freed["blobs"].bytes == len(small) + len(big)
    # gone's three commits had three manifests; the first ({/shared}) is kept's too
    assert report.freed["manifests"].count == 2
    assert blobs_in(store) == {digest(shared)}
    # And the other repo reads as before; a second run frees nothing more
    assert pfs.open_file("kept", "master", "/shared").read() == shared
    check_every_commit(pfs, "kept")
    assert gc(store).total.count == 0


def test_a_deleted_repos_leftover_records_are_garbage(store: ObjectStore) -> None:
    # Given a repo whose repo.json is gone but whose commits and branches are still stored
    # (what an interrupted or older delete-repo leaves)
    pfs = Pfs(store)
    pfs.create_repo("half")
    pfs.put_file("half", "master", "/f", b"leftover")
    store.delete("repos/half/repo.json")
    records = list(store.list("repos/half/"))
    # When GC runs; Then those records, the manifest and the blob are freed
    report = gc(store)
    assert report.freed["deleted-repo records"].count == len(records) > 0
    assert report.freed["blobs"].count == 1 and report.freed["manifests"].count == 1
    assert list(store.list("")) == []
    # And a repo of that name can be made again
    pfs.create_repo("half")
    pfs.put_file("half", "master", "/f", b"new")
    assert pfs.open_file("half", "master", "/f").read() == b"new"


def test_an_open_record_no_branch_claims_is_garbage(store: ObjectStore) -> None:
    from storage.ops import FileOp, OpenCommit

    # Given a claimed open commit holding a file, and an open record nobody claims (what a
    # start-commit killed between writing its record and claiming its branch leaves)
    pfs = Pfs(store)
    pfs.create_repo("data")
    live = pfs.start_commit("data", "master")
    pfs.put_file("data", live.id, "/kept", b"in the claimed open commit")
    lost, size = pfs.files.blobs.put_bytes(b"only in an orphan record")
    orphan = OpenCommit(
        commit=Commit(id=uuid.uuid4().hex, repo="data", branch="dev", started=NOW),
        changes=(FileOp(op="put", path="/x", entry=FileEntry(chunks=(lost,), size=size)),),
    )
    key = f"repos/data/open/{orphan.commit.id}"
    store.put(key, orphan.canonical_bytes())
    # When GC runs with the default grace: too young, kept
    assert collect_garbage(store, settle=0).total.count == 0
    # When it runs with none; Then the orphan and its blob go, the claimed commit stays whole
    report = gc(store)
    assert report.freed["abandoned open commits"].count == 1
    assert report.freed["blobs"].count == 1 and report.freed["blobs"].bytes == size
    assert not store.exists(key) and lost not in blobs_in(store)
    pfs.finish_commit("data", live.id)
    assert pfs.open_file("data", "master", "/kept").read() == b"in the claimed open commit"


def test_temp_keys_of_interrupted_big_uploads_are_freed(store: ObjectStore) -> None:
    # Given a temp key a killed big upload left (BlobStore writes big local blobs to tmp/ first)
    store.put("tmp/blobs/" + uuid.uuid4().hex, b"half an upload")
    # When GC runs; Then it is freed and counted
    report = gc(store)
    assert report.freed["temp objects"].count == 1 and report.freed["temp objects"].bytes == 14
    assert list(store.list("tmp/")) == []


def test_an_unreadable_record_stops_gc_before_any_delete(store: ObjectStore) -> None:
    # Given garbage, and a commit record that does not parse (it may hold roots nobody can see)
    pfs = Pfs(store)
    pfs.create_repo("data")
    pfs.put_file("data", "master", "/f", b"x")
    store.put("tmp/blobs/junk", b"junk")
    store.put("repos/data/commits/" + "f" * 32, b"{not json")
    # When GC runs; Then it stops naming the record, and deleted nothing
    with pytest.raises(DataCorrupted, match="nothing deleted.*repos/data/commits/f{32}"):
        gc(store)
    assert store.exists("tmp/blobs/junk")
    assert list(store.list("_herd/")) in ([], ["_herd/conditional-writes"])  # the mark is gone


def test_extra_roots_keep_what_jobs_still_need(store: ObjectStore) -> None:
    # Given a blob no commit holds, which the caller says an in-flight job needs
    pfs = Pfs(store)
    needed, _ = pfs.files.blobs.put_bytes(b"a datum's output, not merged yet")
    loose, _ = pfs.files.blobs.put_bytes(b"nobody's")
    calls: list[datetime | None] = []

    def roots(since: datetime | None) -> Roots:
        calls.append(since)
        return Roots(blobs={needed})

    # When GC runs; Then that blob stays and the other goes; roots were asked twice (second look)
    report = gc(store, extra_roots=roots)
    assert blobs_in(store) == {needed} and report.freed["blobs"].count == 1
    assert calls[0] is None and calls[1] is not None
    assert loose not in blobs_in(store)


def test_dry_run_deletes_nothing(store: ObjectStore) -> None:
    Pfs(store).files.blobs.put_bytes(b"garbage")
    report = gc(store, dry_run=True)
    assert report.dry_run and report.freed["blobs"].count == 1
    assert len(blobs_in(store)) == 1


def test_the_scheduler_roots_keep_datum_outputs_and_indexes(store: ObjectStore) -> None:
    from scheduler.cli.gc import scheduler_roots
    from scheduler.job_records import DatumResult, DatumState, JobState, JobStatus
    from scheduler.records import DatumIndex, IndexEntry

    # Given blobs held only by a datum result of a running job and by a pipeline's datum index
    pfs = Pfs(store)
    blobs = pfs.files.blobs
    output, _ = blobs.put_bytes(b"output of a running job")
    indexed, _ = blobs.put_bytes(b"output a later job may reuse")
    finished, _ = blobs.put_bytes(b"output of a finished job of a deleted pipeline")
    entry = lambda h: {"/o": FileEntry(chunks=(h,), size=1)}  # noqa: E731
    result = DatumResult(job_id="j1", datum_id="d1", datum_hash="h", state=DatumState.SUCCESS, outputs=entry(output))
    store.put("jobs/j1/results/d1", result.model_dump_json().encode())
    index = DatumIndex(job_id="j0", entries={"h": IndexEntry(sort_key=("/a",), outputs=entry(indexed))})
    store.put("pipelines/p/index/j0", index.model_dump_json().encode())
    store.put("pipelines/p/info", b"{}")
    done = DatumResult(job_id="j2", datum_id="d1", datum_hash="h", state=DatumState.SUCCESS, outputs=entry(finished))
    store.put("jobs/j2/results/d1", done.model_dump_json().encode())
    store.put("jobs/j2/status", JobStatus(state=JobState.JOB_SUCCESS).model_dump_json().encode())
    # When GC runs with the scheduler's roots
    report = gc(store, extra_roots=scheduler_roots(store))
    # Then the running job's and the index's outputs stay; the finished orphan's goes
    assert blobs_in(store) == {output, indexed}
    assert report.freed["blobs"].count == 1


# ---- killed uploads: the real CLI, SIGKILLed mid-upload ------------------------------------------


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def cli_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ObjectStore, dict[str, str]]]:
    """A store and the environment that points the `herd` CLI at it."""
    s3 = request.getfixturevalue("s3_store")("herd") if request.param == "s3" else None  # AWS env first
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERD_")}
    env["HERD_RUNTIME"] = "local"
    if s3 is None:
        from storage.local import LocalObjectStore

        root = tmp_path / "store"
        env["HERD_STORAGE"] = f"file://{root}"
        yield LocalObjectStore(root), env
        return
    env.update(HERD_STORAGE=f"s3://{s3.bucket}/herd", HERD_S3_ENDPOINT_URL=s3.endpoint)
    yield s3, env


def herd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HERD), *args], env=env, capture_output=True, text=True, timeout=300)


def freed_row(output: str, kind: str) -> tuple[int, int]:
    """(count, bytes) of one KIND row of `herd garbage-collect`'s table."""
    for line in output.splitlines():
        if line.startswith(kind + "  "):
            cells = line[len(kind):].split()
            return int(cells[0]), int(cells[-1])
    raise AssertionError(f"no '{kind}' row in:\n{output}")


def kill_mid_upload(store: ObjectStore, env: dict[str, str], tmp_path: Path) -> None:
    """Kill a `herd put-file` of a big file once part of it is stored.

    Local folder: the file comes through a pipe, so the upload is caught half-way whatever the
    disk's speed, and the process is SIGKILLed. S3: a file over the multipart threshold, and the
    process exits as SIGKILL would (status 137, no cleanup) after its second part has landed
    (the `s3.after_upload_part` crash point): a part count, not a race against the clock.
    """
    if store.url.startswith("file:"):
        proc = subprocess.Popen([str(HERD), "put-file", "data", "master", "/big", "-f", "-"], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert proc.stdin is not None
        try:
            for _ in range(24):
                proc.stdin.write(os.urandom(1 << 20))
            proc.stdin.flush()
            started = wait_until(lambda: sum(u.size for u in store.incomplete_uploads()) >= (16 << 20)
                                 or proc.poll() is not None, timeout=120, interval=0.01)
            assert started and proc.poll() is None, "the upload ended before it could be killed"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        return
    big = tmp_path / "big.bin"
    with open(big, "wb") as out:
        for _ in range(48):
            out.write(os.urandom(1 << 20))
    done = herd({**env, "HERD_FAILPOINTS": "s3.after_upload_part:2"}, "put-file", "data", "master", "/big",
                "-f", str(big))
    assert done.returncode == 137, done.stderr


def test_a_killed_upload_leaves_garbage_that_gc_frees(cli_store: tuple[ObjectStore, dict[str, str]], tmp_path: Path) -> None:
    store, env = cli_store
    # Given a repo with a file, and a put-file of a big file killed mid-upload
    assert herd(env, "create-repo", "data").returncode == 0
    small = tmp_path / "small.txt"
    small.write_bytes(b"committed before the crash")
    assert herd(env, "put-file", "data", "master", "/small", "-f", str(small)).returncode == 0
    kill_mid_upload(store, env, tmp_path)
    settle_clock(store)  # also lets parts still in flight at the kill land
    # Then the killed upload left bytes behind (a temp file / an incomplete multipart upload)
    left = sum(u.size for u in store.incomplete_uploads())
    assert left >= 16 << 20
    # When `herd garbage-collect` runs with the default grace: too young, kept
    kept = herd(env, "garbage-collect")
    assert kept.returncode == 0, kept.stderr
    assert freed_row(kept.stdout, "incomplete uploads") == (0, 0)
    # When it runs with --grace 0
    done = herd(env, "garbage-collect", "--grace", "0")
    # Then it reports the upload freed with its bytes, and nothing of it is left
    assert done.returncode == 0, done.stderr
    assert freed_row(done.stdout, "incomplete uploads") == (1, left)
    rows = [freed_row(done.stdout, kind) for kind in KINDS]
    total = f"freed {sum(c for c, _ in rows)} objects, "
    assert total in done.stdout and f"({sum(b for _, b in rows)} bytes)" in done.stdout
    assert list(store.incomplete_uploads()) == []
    if store.url.startswith("file:"):
        leftovers = [p for p in Path(store.root).rglob("*") if p.name.startswith(".~herd-tmp")]  # type: ignore[attr-defined]
        assert leftovers == []
    # And committed data is intact and the branch takes writes again
    got = herd(env, "get-file", "data", "master", "/small")
    assert got.returncode == 0 and got.stdout == "committed before the crash"
    again = herd(env, "put-file", "data", "master", "/after", "-f", str(small))
    assert again.returncode == 0, again.stderr


def test_a_put_file_killed_after_its_blob_is_stored_leaves_a_blob_gc_frees(
    cli_store: tuple[ObjectStore, dict[str, str]], tmp_path: Path
) -> None:
    store, env = cli_store
    # Given a put-file killed after its blob is stored, before any commit names it
    assert herd(env, "create-repo", "data").returncode == 0
    source = tmp_path / "f.txt"
    source.write_bytes(b"stored, never committed")
    killed = herd({**env, "HERD_FAILPOINTS": "commit.before_manifest"}, "put-file", "data", "master", "/f",
                  "-f", str(source))
    assert killed.returncode == 137, killed.stderr
    assert blobs_in(store) == {digest(b"stored, never committed")}
    # When GC runs with no grace; Then that blob is freed and reported with its bytes
    settle_clock(store)
    done = herd(env, "garbage-collect", "--grace", "0")
    assert done.returncode == 0, done.stderr
    assert freed_row(done.stdout, "blobs") == (1, len(b"stored, never committed"))
    assert blobs_in(store) == set()
    # And the same put-file now works and reads back
    assert herd(env, "put-file", "data", "master", "/f", "-f", str(source)).returncode == 0
    assert herd(env, "get-file", "data", "master", "/f").stdout == "stored, never committed"


# ---- a writer running while GC runs, again and again, with no grace -------------------------------


def test_gc_alongside_a_writer_never_removes_a_reachable_byte(store: ObjectStore) -> None:
    pfs = Pfs(store)
    pfs.create_repo("live")
    written: dict[str, bytes] = {}
    errors: list[BaseException] = []
    rounds = 15 if store.url.startswith("s3:") else 60

    def writer() -> None:
        # Its own Pfs: its own caches, as another process would have
        own = Pfs(store)
        try:
            for i in range(rounds):
                tag = f"{i}-{uuid.uuid4().hex}".encode()
                if i % 3 == 2:  # an open commit with several puts, then finish
                    opened = own.start_commit("live", "master")
                    for j in range(3):
                        data = tag + b"-open-%d" % j
                        own.put_file("live", opened.id, f"/open/{i}/{j}", data)
                        written[f"/open/{i}/{j}"] = data
                    own.finish_commit("live", opened.id)
                else:
                    data = tag * (SMALL // len(tag) + 1) if i % 10 == 0 else tag * 50  # big: via tmp/ on local
                    own.put_file("live", "master", f"/put/{i}", data)
                    written[f"/put/{i}"] = data
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    runs, freed = 0, 0
    scratch = Pfs(store)
    while thread.is_alive() or runs < 2:
        # Garbage made meanwhile: a repo filled, then deleted
        name = f"scratch{runs}"
        scratch.create_repo(name)
        scratch.put_file(name, "master", "/x", uuid.uuid4().bytes * 100)
        scratch.delete_repo(name, force=True)
        freed += collect_garbage(store, ZERO).freed["blobs"].count  # the default settle wait
        runs += 1
    thread.join()
    assert errors == [], errors
    # Then every commit's every file reads back with its hash, and the head holds all of them
    head = pfs.read_manifest(pfs.inspect_commit("live", "master"))
    assert set(head.files) == set(written)
    assert check_every_commit(pfs, "live", written) >= len(written)
    # And the GC did free the scratch repos' data along the way (the last ones now)
    freed += gc(store).freed["blobs"].count
    assert runs >= 2 and freed == runs
    check_every_commit(pfs, "live", written)
