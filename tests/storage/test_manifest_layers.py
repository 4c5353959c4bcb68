"""Manifests stored as layers (storage format 4): a commit that changes a few files of many
stores what changed on its parent's manifest; every reader (another process, fsck, garbage-
collect) gets the whole, each layer checked against its id; damage, a chain that lies about its
depth, and a store an older herd marked are all handled. Over memory, local folder and moto S3."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest

from storage.errors import DataCorrupted, ObjectNotFound
from storage.fsck import fsck
from storage.gc import collect_garbage
from storage.layout import FORMAT_KEY, LAYERS_FORMAT, manifest_key
from storage.model import MAX_LAYERS, FileEntry, ManifestLayer, sha256_hex
from storage.objects import ObjectStore
from storage.repos import Pfs

FILES = 40


@pytest.fixture
def pfs(object_store: ObjectStore) -> Pfs:
    pfs = Pfs(object_store)
    pfs.create_repo("data")
    pfs.put_files("data", "master", [(f"/f{i:02d}", f"{i}\n".encode()) for i in range(FILES)])
    return pfs


def stored(objects: ObjectStore, pfs: Pfs, ref: str = "master") -> bytes:
    mid = pfs.inspect_commit("data", ref).manifest
    assert mid is not None
    return objects.get(manifest_key(mid))


def read(pfs: Pfs, path: str, ref: str = "master") -> bytes:
    out = io.BytesIO()
    pfs.get_file("data", ref, path, out)
    return out.getvalue()


def test_a_small_change_is_stored_as_a_layer_and_read_whole_elsewhere(pfs: Pfs, object_store: ObjectStore) -> None:
    # Given 40 files, then one changed, one added and one deleted, a commit each
    first = stored(object_store, pfs)
    pfs.put_file("data", "master", "/f03", b"changed\n")
    pfs.put_file("data", "master", "/new", b"new\n")
    pfs.delete_file("data", "master", "/f07")
    # Then each commit stored only its change, on its parent's manifest, one layer deeper
    layer = ManifestLayer.model_validate_json(stored(object_store, pfs))
    parent = pfs.inspect_commit("data", "master^")
    assert (layer.base, layer.depth, layer.deleted, layer.files) == (parent.manifest, 3, ("/f07",), {})
    assert first.startswith(b'{"files":') and len(stored(object_store, pfs)) < len(first) // 10
    assert object_store.get(FORMAT_KEY) == f"{LAYERS_FORMAT}\n".encode()
    # And another reader (nothing in memory) sees every file as it is
    other = Pfs(object_store)
    files = other.read_manifest(other.inspect_commit("data", "master")).files
    assert sorted(files) == sorted([f"/f{i:02d}" for i in range(FILES) if i != 7] + ["/new"])
    assert read(other, "/f03") == b"changed\n" and read(other, "/new") == b"new\n" and read(other, "/f04") == b"4\n"
    assert read(other, "/f07", "master^") == b"7\n"
    assert other.inspect_commit("data", "master").size == pfs.inspect_commit("data", "master").size
    assert fsck(object_store).ok


def test_chains_stop_at_max_layers_and_large_changes_are_whole(pfs: Pfs, object_store: ObjectStore) -> None:
    # Given as many one-file commits as a chain may hold, and one more
    for n in range(MAX_LAYERS + 1):
        pfs.put_file("data", "master", f"/n{n}", b"x")
    # Then the depths climb to MAX_LAYERS and start again from a whole manifest
    depths = []
    for back in range(MAX_LAYERS + 1, -1, -1):
        data = stored(object_store, pfs, f"master~{back}")
        depths.append(json.loads(data).get("depth", 0))
    assert depths == [0, *range(1, MAX_LAYERS + 1), 0]
    # And a change to more than a quarter of the files is whole
    pfs.put_files("data", "master", [(f"/f{i:02d}", b"all new") for i in range(FILES // 2)])
    assert stored(object_store, pfs).startswith(b'{"files":')


def test_a_missing_or_damaged_base_is_refused_and_fsck_names_the_commit(pfs: Pfs, object_store: ObjectStore) -> None:
    # Given a layer on the first commit's manifest, and that manifest then lost or damaged
    base = pfs.inspect_commit("data", "master").manifest
    assert base is not None
    pfs.put_file("data", "master", "/new", b"new\n")
    top = pfs.inspect_commit("data", "master")
    for damage in ("lost", "flipped"):
        if damage == "lost":
            saved = object_store.get(manifest_key(base))
            object_store.delete(manifest_key(base))
            expected: type[Exception] = ObjectNotFound
        else:
            object_store.put(manifest_key(base), saved.replace(b'"size":3', b'"size":4', 1))
            expected = DataCorrupted
        # When another process reads the newest commit; Then it is refused, not read short
        with pytest.raises(expected, match=manifest_key(base)):
            Pfs(object_store).read_manifest(top)
        # And fsck names the base as damaged, for both commits that hold it
        report = fsck(object_store)
        assert not report.ok
        text = "\n".join(line for d in report.damage for line in d.lines())
        assert manifest_key(base) in text and f"data@{top.id}" in text and f"data@{top.parent}" in text


def _put_layer(objects: ObjectStore, layer: ManifestLayer) -> str:
    data = layer.canonical_bytes()
    mid = sha256_hex(data)
    objects.put(manifest_key(mid), data)
    return mid


def test_a_chain_that_lies_about_its_depth_is_refused(pfs: Pfs, object_store: ObjectStore) -> None:
    # Given layers crafted outside herd: one claiming depth 1 on another layer, one deeper than allowed
    base = pfs.inspect_commit("data", "master").manifest
    assert base is not None
    entry = FileEntry(chunks=("0" * 64,), size=0)
    lower = _put_layer(object_store, ManifestLayer(base=base, depth=1, files={"/a": entry}))
    liar = _put_layer(object_store, ManifestLayer(base=lower, depth=1, files={"/b": entry}))
    deep = _put_layer(object_store, ManifestLayer(base=base, depth=MAX_LAYERS + 1, files={"/c": entry}))
    # When they are read; Then each is refused, naming the record
    for mid in (liar, deep):
        with pytest.raises(DataCorrupted, match="layer .* deep"):
            Pfs(object_store).commits.manifest(mid)


def test_an_older_store_is_raised_to_the_layers_format_first(object_store: ObjectStore) -> None:
    # Given a store an older herd marked (format 3: no layers)
    object_store.put(FORMAT_KEY, b"3\n")
    pfs = Pfs(object_store)
    pfs.create_repo("data")
    pfs.put_files("data", "master", [(f"/f{i:02d}", b"x") for i in range(FILES)])
    assert object_store.get(FORMAT_KEY) == b"3\n"  # whole manifests only: nothing to raise for
    # When a commit stores a layer; Then the marker says 4 first, so a format-3 herd refuses the store
    pfs.put_file("data", "master", "/new", b"new")
    assert object_store.get(FORMAT_KEY) == f"{LAYERS_FORMAT}\n".encode()
    assert stored(object_store, pfs).startswith(b'{"base":')


def test_garbage_collect_keeps_every_manifest_a_layer_is_built_on(pfs: Pfs, object_store: ObjectStore) -> None:
    # Given a chain of layers on the first commit
    for n in range(3):
        pfs.put_file("data", "master", f"/n{n}", f"{n}".encode())
    # When garbage is collected with no grace
    report = collect_garbage(object_store, timedelta(0))
    # Then nothing any commit reads was freed: every file still reads back and fsck is clean
    assert report.kept_manifests == 4
    other = Pfs(object_store)
    assert read(other, "/f05") == b"5\n" and read(other, "/n2") == b"2"
    assert fsck(object_store).ok
