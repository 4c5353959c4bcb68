"""fsck and garbage-collect over packs (storage format 2), on memory, the local folder and
moto's S3 server over HTTP: a packed chunk is checked as its slice of its pack, damage names
the file it breaks, a pack lives while any chunk of it is reachable, and a file entry whose
slices do not match its chunks is damage to fsck and a stop for garbage-collect."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from storage.errors import DataCorrupted
from storage.fsck import FsckReport, fsck
from storage.gc import KINDS, Garbage, Roots, collect_garbage, find_garbage
from storage.layout import PACK_PREFIX, manifest_key, open_key, pack_key
from storage.model import FileEntry, Manifest
from storage.objects import ObjectInfo, ObjectStore
from storage.ops import FileOp
from storage.packs import PACK_MIN_CHUNKS
from storage.repos import Pfs
from tests.storage.packing import pack_chunks
from tests.storage.test_gc import blobs_in, gc, settle_clock

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
COUNT = PACK_MIN_CHUNKS + 4


def contents(count: int = COUNT, tag: str = "f") -> dict[str, bytes]:
    return {f"/d/{tag}{index:03}.txt": f"{tag} file {index:03} ".encode() * 7 for index in range(count)}


def packs_in(store: ObjectStore) -> set[str]:
    return {key.rsplit("/", 1)[1] for key in store.list(PACK_PREFIX)}


def lines(report: FsckReport) -> list[str]:
    return [line for damage in report.damage for line in damage.lines()]


def head_manifest(pfs: Pfs, repo: str = "data", ref: str = "master") -> Manifest:
    return pfs.read_manifest(pfs.inspect_commit(repo, ref))


def the_pack(manifest: Manifest) -> str:
    packs = {where[0] for entry in manifest.files.values() for where in entry.packed if where is not None}
    assert len(packs) == 1, packs
    return packs.pop()


def flip(store: ObjectStore, key: str, offset: int) -> None:
    data = bytearray(store.get(key))
    data[offset] ^= 0xFF
    store.put(key, bytes(data))


def read(pfs: Pfs, path: str, repo: str = "data", ref: str = "master") -> bytes:
    with pfs.open_file(repo, ref, path) as handle:
        return handle.read()


@pytest.fixture
def pfs(object_store: ObjectStore) -> Pfs:
    """Repo `data` whose master holds COUNT small files put at once: one pack."""
    pfs = Pfs(object_store)
    pfs.create_repo("data")
    pfs.put_files("data", "master", list(contents().items()))
    manifest = head_manifest(pfs)
    assert all(entry.packed and entry.packed[0] is not None for entry in manifest.files.values())
    assert not blobs_in(object_store)  # every chunk is packed: no loose blob at all
    return pfs


# ---- fsck ---------------------------------------------------------------------------------------


def test_fsck_checks_every_packed_chunk_and_counts_the_pack(pfs: Pfs, object_store: ObjectStore) -> None:
    report = fsck(object_store)
    assert report.ok, lines(report)
    assert report.packs == 1 and report.blobs == COUNT
    assert report.bytes == sum(len(data) for data in contents().values())
    assert report.summary().endswith(f"{COUNT} blobs ({report.bytes} bytes), 1 packs")


def test_a_flipped_byte_in_a_slice_names_that_file_blob_and_pack(pfs: Pfs, object_store: ObjectStore) -> None:
    # Given one byte flipped inside the slice of /d/f003.txt in the pack
    entry = head_manifest(pfs).files["/d/f003.txt"]
    pack, offset, length = entry.packed[0]  # type: ignore[misc]
    flip(object_store, pack_key(pack), offset + length // 2)
    # When checked; Then exactly that file is damaged, named by its chunk and its pack
    report = fsck(object_store)
    head = pfs.inspect_commit("data", "master").id
    assert [(d.what, d.affects) for d in report.damage] == [
        (f"blob '{entry.chunks[0]}' in pack '{pack}'", (f"data@{head}:/d/f003.txt",)),
    ]
    assert "hash to" in report.damage[0].why
    assert lines(report)[0].startswith(f"damaged blob '{entry.chunks[0]}' in pack '{pack}': ")
    # And the other chunks of the pack were still checked, the pack read once
    assert report.packs == 1 and report.blobs == COUNT - 1


def test_bytes_of_a_pack_no_entry_references_are_not_damage(object_store: ObjectStore) -> None:
    # Given a pack of which a commit references only the even chunks
    pfs = Pfs(object_store)
    pfs.create_repo("data")
    chunks = list(contents().values())
    entries = pack_chunks(object_store, chunks)
    kept = {f"/k{index:03}": entry for index, entry in enumerate(entries) if index % 2 == 0}
    pfs.commits.commit_on_branch("data", "master", lambda _base: Manifest(files=kept))
    # When a byte of an unreferenced (odd) chunk's bytes is flipped
    pack, offset, _ = entries[1].packed[0]  # type: ignore[misc]
    flip(object_store, pack_key(pack), offset)
    # Then fsck finds nothing: only referenced slices are checked, not the pack's own hash
    report = fsck(object_store)
    assert report.ok, lines(report)
    assert report.packs == 1 and report.blobs == len(kept)
    # While a flip inside a referenced slice is found
    pack, offset, _ = entries[2].packed[0]  # type: ignore[misc]
    flip(object_store, pack_key(pack), offset)
    head = pfs.inspect_commit("data", "master").id
    assert [d.affects for d in fsck(object_store).damage] == [(f"data@{head}:/k002",)]


def test_a_missing_pack_makes_every_packed_file_missing(pfs: Pfs, object_store: ObjectStore) -> None:
    pack = the_pack(head_manifest(pfs))
    object_store.delete(pack_key(pack))
    report = fsck(object_store)
    head = pfs.inspect_commit("data", "master").id
    assert {d.why for d in report.damage} == {f"missing (pack '{pack}')"}
    assert sorted(item for d in report.damage for item in d.affects) == sorted(f"data@{head}:{p}" for p in contents())
    assert all(d.what.endswith(f" in pack '{pack}'") for d in report.damage)
    assert report.packs == 0 and report.blobs == 0
    assert len(report.affected_commits()) == 1


def test_a_damaged_packed_chunk_of_an_open_commit_names_it(pfs: Pfs, object_store: ObjectStore) -> None:
    opened = pfs.start_commit("data", "master")
    pfs.put_files("data", opened.id, list(contents(tag="o").items()))
    pending = pfs.commits.read_open("data", opened.id)
    assert pending is not None
    entry = next(op.entry for op in pending.changes if op.path == "/d/o005.txt")
    assert entry is not None and entry.packed
    pack, offset, _ = entry.packed[0]  # type: ignore[misc]
    flip(object_store, pack_key(pack), offset)
    report = fsck(object_store)
    assert report.open_commits == 1 and report.packs == 2
    assert [(d.what, d.affects) for d in report.damage] == [
        (f"blob '{entry.chunks[0]}' in pack '{pack}'", (f"data@{opened.id}:/d/o005.txt (open commit)",)),
    ]


def mismatched(pfs: Pfs) -> FileEntry:
    """An entry with two chunks but one slice (only a crafted record has that)."""
    entry = head_manifest(pfs).files["/d/f000.txt"]
    second = head_manifest(pfs).files["/d/f001.txt"]
    return FileEntry(chunks=entry.chunks + second.chunks, size=entry.size + second.size, packed=entry.packed)


def test_a_crafted_entry_whose_slices_do_not_match_is_manifest_damage(pfs: Pfs, object_store: ObjectStore) -> None:
    # Given a commit whose manifest holds a good file and one whose slices do not match its chunks
    good = head_manifest(pfs).files["/d/f002.txt"]
    crafted = Manifest(files={"/bad": mismatched(pfs), "/good": good})
    commit = pfs.commits.commit_on_branch("data", "evil", lambda _base: crafted)
    # When checked; Then the manifest is damaged at that path, the rest still checked, no crash
    report = fsck(object_store, "data")
    assert [(d.what, d.affects) for d in report.damage] == [
        (f"manifest '{manifest_key(crafted.id)}'", (f"data@{commit.id}:/bad",)),
    ]
    assert "file entry '/bad' places 1 chunks in packs but has 2" == report.damage[0].why
    assert report.packs == 1 and report.blobs == COUNT  # /good shares a chunk of master's pack


def test_a_crafted_entry_in_an_open_commit_is_damage_of_its_record(pfs: Pfs, object_store: ObjectStore) -> None:
    opened = pfs.start_commit("data", "master")
    pfs.put_file("data", opened.id, "/x", b"x")
    key = open_key("data", opened.id)
    pending = pfs.commits.read_open("data", opened.id)
    assert pending is not None
    forged = pending.model_copy(update={"changes": (FileOp(op="put", path="/bad", entry=mismatched(pfs)),)})
    object_store.put(key, forged.canonical_bytes())
    report = fsck(object_store)
    assert [(d.what, d.affects) for d in report.damage] == [
        (f"open commit record '{key}'", (f"data@{opened.id}:/bad (open commit)",)),
    ]


# ---- garbage-collect: pure --------------------------------------------------------------------


def test_packs_are_a_kind_after_blobs() -> None:
    assert KINDS[:2] == ("blobs", "packs")


def test_find_garbage_for_packs() -> None:
    old, young = NOW - timedelta(minutes=5), NOW
    kept, lost, fresh = "a" * 64, "b" * 64, "c" * 64
    infos = [
        ObjectInfo(pack_key(kept), 1, old),  # reachable
        ObjectInfo(pack_key(lost), 2, old),  # unreachable, old: garbage
        ObjectInfo(pack_key(fresh), 3, young),  # unreachable but written at the mark: kept
        ObjectInfo("packs/zz/not-a-pack", 4, old),  # not a pack key: never touched
        ObjectInfo(f"packs/bb/{kept}", 5, old),  # a pack id under the wrong folder: never touched
        ObjectInfo(f"blobs/aa/{kept}", 6, old),  # a blob of the same id as a kept pack: garbage
    ]
    found = list(find_garbage(infos, Roots(packs={kept}), set(), cutoff=NOW))
    assert found == [Garbage("packs", pack_key(lost), 2), Garbage("blobs", f"blobs/aa/{kept}", 6)]


def test_roots_keep_a_loose_chunks_blob_and_a_packed_chunks_pack() -> None:
    loose, packed, pack = "1" * 64, "2" * 64, "3" * 64
    both = FileEntry(chunks=(loose, packed), size=5, packed=(None, (pack, 0, 2)))
    roots = Roots()
    roots.add_entries([both, FileEntry(chunks=("4" * 64,), size=1)])
    assert roots.blobs == {loose, "4" * 64} and roots.packs == {pack}
    other = Roots(packs={"5" * 64})
    other.update(roots)
    assert other.packs == {pack, "5" * 64}
    bad = FileEntry(chunks=(loose, packed), size=5, packed=((pack, 0, 2),))
    with pytest.raises(DataCorrupted, match="^garbage-collect stopped, nothing deleted: record 'jobs/j/plan' "):
        Roots().add_entries([bad], "record 'jobs/j/plan'")


# ---- garbage-collect on every backend -----------------------------------------------------------


def test_a_referenced_pack_is_kept(pfs: Pfs, object_store: ObjectStore) -> None:
    pack = the_pack(head_manifest(pfs))
    report = gc(object_store)
    assert report.total.count == 0 and report.kept_packs == 1 and report.kept_blobs == 0
    assert packs_in(object_store) == {pack}
    assert all(read(pfs, path) == data for path, data in contents().items())


def test_a_pack_goes_when_its_repo_goes_but_not_while_another_repo_shares_a_chunk(
    pfs: Pfs, object_store: ObjectStore
) -> None:
    # Given a second repo holding a copy of ONE packed file (the copy shares its slice)
    pack = the_pack(head_manifest(pfs))
    pfs.create_repo("other")
    pfs.copy_file("data", "master", "/d/f007.txt", "other", "master", "/copy.txt")
    # When the first repo is deleted; Then the pack stays: one chunk of it is still reachable
    pfs.delete_repo("data", force=True)
    report = gc(object_store)
    assert report.freed["packs"].count == 0 and report.kept_packs == 1
    assert read(pfs, "/copy.txt", repo="other") == contents()["/d/f007.txt"]
    assert fsck(object_store).ok
    # When the second goes too; Then the pack is freed, counted under packs with its bytes
    size = len(object_store.get(pack_key(pack)))
    pfs.delete_repo("other", force=True)
    report = gc(object_store)
    assert (report.freed["packs"].count, report.freed["packs"].bytes) == (1, size)
    assert packs_in(object_store) == set() and report.kept_packs == 0


def test_a_pack_only_an_old_commit_holds_stays_with_history(pfs: Pfs, object_store: ObjectStore) -> None:
    # Every finished commit is a root: deleting the files at the head keeps them in history
    pack = the_pack(head_manifest(pfs))
    old = pfs.inspect_commit("data", "master").id
    pfs.delete_file("data", "master", "/d")
    assert gc(object_store).freed["packs"].count == 0
    assert packs_in(object_store) == {pack}
    assert read(pfs, "/d/f011.txt", ref=old) == contents()["/d/f011.txt"]


def test_an_unreferenced_pack_waits_for_its_grace(object_store: ObjectStore) -> None:
    # Given a pack no record names (a put-file -r killed between its pack and its commit)
    pack_chunks(object_store, list(contents().values()))
    (pack,) = packs_in(object_store)
    # When GC runs with the default grace: too young, kept
    settle_clock(object_store)
    assert collect_garbage(object_store, settle=0).freed["packs"].count == 0
    # When it runs as a dry run with none: reported, not deleted
    report = gc(object_store, dry_run=True)
    assert report.freed["packs"].count == 1 and packs_in(object_store) == {pack}
    # When it runs for real; Then it is freed
    assert gc(object_store).freed["packs"].count == 1
    assert packs_in(object_store) == set()


def test_a_pack_recorded_after_the_mark_is_kept_by_the_second_look(object_store: ObjectStore) -> None:
    # Given a pack written before the run and a commit naming it recorded once the run started
    pfs = Pfs(object_store)
    pfs.create_repo("data")
    entries = pack_chunks(object_store, list(contents().values()))
    (pack,) = packs_in(object_store)
    files = {f"/late{index:03}": entry for index, entry in enumerate(entries)}

    def record_meanwhile(since: datetime | None) -> Roots:
        if since is None:  # the first look: the writer lands its commit now
            pfs.commits.commit_on_branch("data", "master", lambda _base: Manifest(files=files))
        return Roots()

    # When GC runs with no grace (the commit's write time is after the mark)
    settle_clock(object_store)
    report = collect_garbage(object_store, timedelta(0), extra_roots=record_meanwhile, settle=0)
    # Then the pack is kept and every file reads
    assert report.freed["packs"].count == 0 and packs_in(object_store) == {pack}
    assert read(pfs, "/late003") == list(contents().values())[3]


def test_extra_roots_keep_packed_outputs(object_store: ObjectStore) -> None:
    # The scheduler passes datum outputs as file entries: a packed one keeps its pack
    entries = pack_chunks(object_store, list(contents().values()))
    (pack,) = packs_in(object_store)

    def outputs(_since: datetime | None) -> Roots:
        roots = Roots()
        roots.add_entries(entries[:1], "a datum result")
        return roots

    report = gc(object_store, extra_roots=outputs)
    assert report.freed["packs"].count == 0 and report.kept_packs == 1 and packs_in(object_store) == {pack}


def test_a_crafted_entry_stops_gc_before_any_delete(pfs: Pfs, object_store: ObjectStore) -> None:
    # Given garbage to free (a deleted repo with its own pack) and a live commit whose manifest
    # holds an entry whose slices do not match its chunks
    pfs.create_repo("gone")
    pfs.put_files("gone", "master", list(contents(tag="g").items()))
    pfs.delete_repo("gone", force=True)
    crafted = Manifest(files={"/bad": mismatched(pfs)})
    pfs.commits.commit_on_branch("data", "evil", lambda _base: crafted)
    before = sorted(object_store.list(""))
    # When GC runs; Then it stops naming the manifest, and nothing was deleted
    with pytest.raises(DataCorrupted, match="^garbage-collect stopped, nothing deleted: record "
                                            f"'{manifest_key(crafted.id)}' .*run 'herd fsck'$"):
        gc(object_store)
    assert sorted(object_store.list("")) == before


def test_every_chunk_reads_after_collecting_around_packs(pfs: Pfs, object_store: ObjectStore) -> None:
    # A mixed store: packed files, a loose big file, an appended packed file, a deleted repo
    pfs.put_file("data", "master", "/big.bin", b"B" * (2 * 1024 * 1024))
    pfs.put_file("data", "master", "/d/f000.txt", b"+tail", append=True)
    pfs.create_repo("gone")
    pfs.put_files("gone", "master", list(contents(tag="g").items()))
    pfs.delete_repo("gone", force=True)
    report = gc(object_store)
    assert report.freed["packs"].count == 1 and report.kept_packs == 1 and report.kept_blobs >= 2
    check = fsck(object_store)
    assert check.ok, lines(check)
    assert read(pfs, "/d/f000.txt") == contents()["/d/f000.txt"] + b"+tail"
    assert hashlib.sha256(read(pfs, "/big.bin")).hexdigest() == head_manifest(pfs).files["/big.bin"].hash
