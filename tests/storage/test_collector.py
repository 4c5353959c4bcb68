"""Big records parse, and put_files of many files runs, with the cyclic collector paused
(storage.collector.collector_paused), and the collector is always as it was afterwards: after a
parse, a corrupt record, a refused put, or when paused before. What a pause made joins the
oldest generation unwalked, cycles among it are still collected, and nobody's frozen objects thaw."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.errors import DataCorrupted, InvalidArgument
from storage.collector import collector_paused
from storage.model import BIG_RECORD_BYTES, FileEntry, Manifest


def big_manifest_bytes(files: int = 20_000) -> bytes:
    entries = {f"/d{i % 50:02}/f{i:06}": FileEntry(chunks=(hashlib.sha256(str(i).encode()).hexdigest(),), size=i)
               for i in range(files)}
    data = Manifest(files=entries).canonical_bytes()
    assert len(data) >= BIG_RECORD_BYTES
    return data


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generations of every collection that starts while the test runs."""
    started: list[int] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.callbacks.append(watch)
    yield started
    gc.callbacks.remove(watch)


def test_a_big_manifest_parses_with_no_collection_and_the_collector_back_on(collections: list[int]) -> None:
    data = big_manifest_bytes()
    assert gc.isenabled()
    collections.clear()
    Manifest.__pydantic_validator__.validate_json(data)  # pydantic alone: the collector runs
    unpaused = len(collections)
    collections.clear()
    manifest = Manifest.from_bytes(data)
    assert unpaused >= 10
    assert len(collections) <= 1  # one may start in the few allocations outside the pause
    assert gc.isenabled()
    assert len(manifest.files) == 20_000


def test_without_cause_the_collector_is_left_alone() -> None:
    with collector_paused(False):
        assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_corrupt_big_record_raises_and_the_collector_is_back_on() -> None:
    data = big_manifest_bytes()
    with pytest.raises(DataCorrupted, match="manifest"):
        Manifest.from_bytes(data[:-10] + b"!!!!!!!!!!")
    assert gc.isenabled()


def test_a_collector_paused_before_stays_paused() -> None:
    gc.disable()
    try:
        Manifest.from_bytes(big_manifest_bytes())
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_big_record_parses_to_what_pydantic_alone_makes() -> None:
    data = big_manifest_bytes()
    assert Manifest.from_bytes(data) == Manifest.__pydantic_validator__.validate_json(data)
    assert Manifest.model_validate_json(data) == Manifest.from_bytes(data)


@pytest.mark.parametrize("damage", ["nested", "utf16", "bad utf8", "wrong type", "extra field"])
def test_a_damaged_big_record_is_data_corrupted_naming_the_key(damage: str) -> None:
    data = big_manifest_bytes()
    if damage == "nested":  # json.loads meets its recursion limit: still one herd error
        bad = b"[" * BIG_RECORD_BYTES + b"]" * BIG_RECORD_BYTES
    elif damage == "utf16":
        bad = data.decode().encode("utf-16")
    elif damage == "bad utf8":
        bad = data[:-100] + b"\xff" + data[-99:]
    elif damage == "wrong type":
        bad = data.replace(b'"size":50}', b'"size":"fifty"}', 1)
    else:
        bad = data[:-2] + b',"x":1}}'
    assert bad != data and len(bad) >= BIG_RECORD_BYTES
    with pytest.raises(DataCorrupted, match="manifests/abc"):
        Manifest.from_bytes(bad, key="manifests/abc")
    assert gc.isenabled()


def test_put_files_of_many_files_runs_without_collections_and_leaves_the_collector_on(
    collections: list[int], tmp_path: Path,
) -> None:
    from storage.files import MANY_FILES
    from storage.local import LocalObjectStore
    from storage.repos import Pfs

    # Given a folder of MANY_FILES small files, and one of the same with one missing among them
    pfs = Pfs(LocalObjectStore(tmp_path / "store"))
    pfs.create_repo("data")
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(MANY_FILES):
        (folder / f"f{i:05}").write_bytes(b"%d\n" % i)
    items = [(f"/f{i:05}", folder / f"f{i:05}") for i in range(MANY_FILES)]
    # When they are put in one commit; Then no collection ran meanwhile (one may start in the
    # few allocations before the pause), every file is there, and the collector is back on
    collections.clear()
    pfs.put_files("data", "master", items)
    assert len(collections) <= 1 and gc.isenabled()
    assert len(pfs.list_file("data", "master", "/")) == MANY_FILES
    # And a refused put (a source that is gone) leaves it on too, and changes nothing
    (folder / "f00007").unlink()
    with pytest.raises(InvalidArgument, match="f00007"):
        pfs.put_files("data", "master", [(path, source) for path, source in items if path != "/f00000"])
    assert gc.isenabled() and len(pfs.list_file("data", "master", "/")) == MANY_FILES


def test_what_a_pause_made_joins_the_oldest_generation_unwalked() -> None:
    # Given 100,000 objects made and kept during a pause
    with collector_paused():
        kept = [[i] for i in range(100_000)]
        young = gc.get_count()[0]
    # Then they are in the oldest generation at once, with no collection owed for them (the next
    # one would have walked them all), and nothing was left frozen
    assert young > 100_000 and gc.get_count()[0] < 700
    assert any(o is kept for o in gc.get_objects(generation=2))
    assert not any(o is kept for o in gc.get_objects(generation=0))
    assert gc.get_freeze_count() == 0


def test_a_garbage_cycle_made_during_a_pause_is_still_collected() -> None:
    import weakref

    class Node:
        pass

    with collector_paused():
        node = Node()
        node.self = node  # type: ignore[attr-defined]
        gone = weakref.ref(node)
        del node
    assert gone() is not None  # a cycle: only the collector frees it
    gc.collect()
    assert gone() is None


def test_what_another_froze_stays_frozen() -> None:
    frozen = [[i] for i in range(1_000)]
    gc.freeze()
    try:
        count = gc.get_freeze_count()
        with collector_paused():
            made = [[i] for i in range(1_000)]
        # Frozen objects that die meanwhile leave the count, so it may only shrink: the block froze
        # nothing more (what it made is listed) and thawed nothing (the frozen list is not listed)
        assert 0 < gc.get_freeze_count() <= count and gc.isenabled()
        listed = gc.get_objects()
        assert not any(o is frozen for o in listed)
        assert any(o is made for o in listed)
    finally:
        gc.unfreeze()
    assert len(made) == len(frozen)
