"""`fsck` over memory, the local folder and moto S3: every kind of damage found and attributed."""

from __future__ import annotations

import pytest

from storage.errors import InvalidName, RepoNotFound
from storage.fsck import FsckReport, fsck
from storage.layout import blob_key, branch_key, commit_key, manifest_key, open_key, repo_key
from storage.model import FileEntry, Manifest
from storage.objects import ObjectStore
from storage.repos import Pfs


@pytest.fixture
def pfs(object_store: ObjectStore) -> Pfs:
    """Two repos; `data` has two branches and three commits sharing one file's blob."""
    pfs = Pfs(object_store)
    pfs.create_repo("data")
    pfs.create_repo("other")
    pfs.put_file("data", "master", "/shared.txt", b"shared bytes")
    pfs.put_file("data", "master", "/dir/a.txt", b"aaa")
    pfs.put_file("data", "dev", "/copy.txt", b"shared bytes")
    pfs.put_file("other", "master", "/o.txt", b"other")
    return pfs


def lines(report: FsckReport) -> list[str]:
    return [line for damage in report.damage for line in damage.lines()]


def commit_ids(pfs: Pfs, repo: str, branch: str) -> list[str]:
    return [c.id for c in pfs.list_commits(repo, branch)]  # newest first


def blob_of(pfs: Pfs, repo: str, ref: str, path: str) -> str:
    return pfs.read_manifest(pfs.inspect_commit(repo, ref)).files[path].chunks[0]


def test_a_healthy_store_is_ok(pfs: Pfs, object_store: ObjectStore) -> None:
    report = fsck(object_store)
    assert report.ok, lines(report)
    assert (report.repos, report.branches, report.commits, report.manifests) == (2, 3, 4, 4)
    assert report.blobs == 3 and report.bytes == len(b"shared bytes") + 3 + 5
    one = fsck(object_store, "other")
    assert one.ok and (one.repos, one.commits, one.blobs) == (1, 1, 1)


def test_a_damaged_blob_names_every_commit_and_path_holding_it(pfs: Pfs, object_store: ObjectStore) -> None:
    # Given the blob two paths on two branches share, with one byte flipped
    digest = blob_of(pfs, "data", "master", "/shared.txt")
    object_store.put(blob_key(digest), b"Shared bytes")
    # When checked; Then one damage, one line per commit/path it affects
    report = fsck(object_store)
    assert len(report.damage) == 1 and report.damage[0].what == f"blob '{digest}'"
    assert "hash to" in report.damage[0].why
    master, dev = commit_ids(pfs, "data", "master"), commit_ids(pfs, "data", "dev")
    expected = {f"data@{cid}:/shared.txt" for cid in master} | {f"data@{dev[0]}:/copy.txt"}
    assert set(report.damage[0].affects) == expected
    assert all(line.startswith(f"damaged blob '{digest}'") for line in lines(report))
    # And the other repo alone is fine
    assert fsck(object_store, "other").ok


def test_a_missing_blob_is_damage(pfs: Pfs, object_store: ObjectStore) -> None:
    digest = blob_of(pfs, "data", "master", "/dir/a.txt")
    object_store.delete(blob_key(digest))
    report = fsck(object_store, "data")
    assert [(d.what, d.why) for d in report.damage] == [(f"blob '{digest}'", "missing")]
    assert report.damage[0].affects == (f"data@{commit_ids(pfs, 'data', 'master')[0]}:/dir/a.txt",)


def test_a_manifest_with_valid_json_but_wrong_bytes_is_found(pfs: Pfs, object_store: ObjectStore) -> None:
    head = pfs.inspect_commit("data", "master")
    key = manifest_key(head.manifest)  # type: ignore[arg-type]
    forged = Manifest.from_bytes(object_store.get(key)).model_copy(update={"files": {}})
    object_store.put(key, forged.canonical_bytes())
    report = fsck(object_store)
    assert [d.what for d in report.damage] == [f"manifest '{key}'"]
    assert "hash to" in report.damage[0].why and report.damage[0].affects == (f"data@{head.id}",)


def test_missing_and_unparsable_manifests(pfs: Pfs, object_store: ObjectStore) -> None:
    master = pfs.inspect_commit("data", "master")
    dev = pfs.inspect_commit("data", "dev")
    object_store.delete(manifest_key(master.manifest))  # type: ignore[arg-type]
    object_store.put(manifest_key(dev.manifest), b"{\"files\": 3}")  # type: ignore[arg-type]
    report = fsck(object_store)
    found = {d.what: (d.why, d.affects) for d in report.damage}
    assert found[f"manifest 'manifests/{master.manifest}'"] == ("missing", (f"data@{master.id}",))
    assert found[f"manifest 'manifests/{dev.manifest}'"][1] == (f"data@{dev.id}",)


def test_damaged_and_missing_commit_records(pfs: Pfs, object_store: ObjectStore) -> None:
    first, second = commit_ids(pfs, "data", "master")[::-1]
    object_store.put(commit_key("data", first), b"\xff not json")
    report = fsck(object_store)
    assert [d.what for d in report.damage] == [f"commit record 'repos/data/commits/{first}'"]
    assert report.damage[0].affects == (f"data@{first} (parent of data@{second})",)
    object_store.delete(commit_key("data", second))
    report = fsck(object_store)
    assert {d.what: d.why for d in report.damage}[f"commit record 'repos/data/commits/{second}'"] == "missing"


def test_damaged_branch_and_repo_records(pfs: Pfs, object_store: ObjectStore) -> None:
    object_store.put(branch_key("data", "dev"), b"[]")
    object_store.put(repo_key("other"), b"")
    report = fsck(object_store)
    assert sorted(d.what for d in report.damage) == [
        "branch record 'repos/data/branches/dev'", "repo record 'repos/other/repo.json'",
    ]


def test_an_open_commit_is_checked_too(pfs: Pfs, object_store: ObjectStore) -> None:
    opened = pfs.start_commit("data", "master")
    pfs.put_file("data", opened.id, "/pending.txt", b"pending bytes")
    pending = pfs.commits.read_open("data", opened.id)
    assert pending is not None
    digest = pending.changes[-1].entry.chunks[0]  # type: ignore[union-attr]
    object_store.put(blob_key(digest), b"pending byteS")
    report = fsck(object_store)
    assert report.open_commits == 1
    assert report.damage[0].affects == (f"data@{opened.id}:/pending.txt (open commit)",)
    object_store.put(open_key("data", opened.id), b"{")
    assert any(d.what == f"open commit record 'repos/data/open/{opened.id}'" for d in fsck(object_store).damage)


def test_a_manifest_naming_no_blob_id_is_damage(pfs: Pfs, object_store: ObjectStore) -> None:
    bad = Manifest(files={"/x": FileEntry(chunks=("not-a-hash",), size=1)})
    pfs.commits.commit_on_branch("data", "master", lambda _base: bad)
    report = fsck(object_store, "data")
    assert [d.what for d in report.damage] == ["blob 'not-a-hash'"]


def test_unknown_or_invalid_repo(pfs: Pfs, object_store: ObjectStore) -> None:
    with pytest.raises(RepoNotFound):
        fsck(object_store, "nope")
    with pytest.raises(InvalidName):
        fsck(object_store, "../x")


def test_an_empty_store_is_ok(object_store: ObjectStore) -> None:
    report = fsck(object_store)
    assert report.ok and report.repos == 0


def test_names_from_a_hostile_manifest_are_printed_escaped(pfs: Pfs, object_store: ObjectStore) -> None:
    # Given a crafted manifest whose path holds a terminal escape, pointing at a damaged blob
    digest = pfs.files.blobs.put_bytes(b"payload")[0]
    evil = Manifest(files={"/e\x1b[2J": FileEntry(chunks=(digest,), size=7)})
    pfs.commits.commit_on_branch("data", "evil", lambda _base: evil)
    object_store.put(blob_key(digest), b"PAYLOAD")
    # Then every line fsck prints is printable, the escape shown as \x1b
    printed = lines(fsck(object_store, "data"))
    assert printed and all(line.isprintable() for line in printed)
    assert any("/e\\x1b[2J" in line for line in printed)
