"""Output merge: union of datum outputs, same path concatenated in datum order (Pachyderm 1.x)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.merge import merge_changes, merge_outputs, merged
from storage.errors import HerdError
from storage.model import FileEntry, Manifest
from storage.paths import find_clash


def e(*chunks: str) -> FileEntry:
    return FileEntry(chunks=tuple(c * 64 for c in chunks), size=len(chunks))


def out(**files: FileEntry) -> dict[str, FileEntry]:
    return Manifest(files={"/" + k.replace("__", "/"): v for k, v in files.items()}).files


def test_disjoint_outputs_are_united() -> None:
    merged = merge_outputs([(("/a",), out(x=e("1"))), (("/b",), out(y=e("2")))])
    assert merged == Manifest(files={"/x": e("1"), "/y": e("2")})


def test_same_path_is_concatenated_in_datum_order() -> None:
    # Given word count's map stage: two datums append to /the, When merged in any arrival order,
    # Then the chunks follow the datum sort order.
    outputs = [(("/doc2",), out(the=e("b"))), (("/doc1",), out(the=e("a"), cat=e("c")))]
    merged = merge_outputs(outputs)
    assert merged.files["/the"] == e("a", "b")
    assert merged.files["/the"].size == 2
    assert merge_outputs(reversed(outputs)) == merged


def test_multi_chunk_entries_keep_their_chunks() -> None:
    merged = merge_outputs([(("/1",), out(f=e("a", "b"))), (("/2",), out(f=e("c")))])
    assert merged.files["/f"] == e("a", "b", "c")


def test_file_versus_directory_names_the_path_and_datums() -> None:
    outputs = [(("/img1",), out(res=e("1"))), (("/img2",), out(res__x=e("2")))]
    with pytest.raises(HerdError) as info:
        merge_outputs(outputs)
    message = str(info.value)
    assert "'/res'" in message and "/img1" in message and "/img2" in message


def test_deep_clash_is_found() -> None:
    with pytest.raises(HerdError, match="'/a/b'"):
        merge_outputs([(("/1",), out(a__b__c=e("1"))), (("/2",), out(a__b=e("2")))])


def test_empty() -> None:
    assert merge_outputs([]) == Manifest()
    assert merge_outputs([(("/",), {})]) == Manifest()


def test_equal_keys_are_ordered_by_manifest_not_arrival() -> None:
    a, b = (("/f",), out(x=e("1"))), (("/f",), out(x=e("2")))
    assert merge_outputs([a, b]) == merge_outputs([b, a])


KEYS = st.tuples(st.sampled_from(["/a", "/b", "/c", "/d"]), st.sampled_from(["/x", "/y"]))
OUTPUT = st.dictionaries(st.sampled_from(["/o1", "/o2", "/d/o3"]), st.sampled_from("0123456789"), max_size=3)


@given(st.lists(st.tuples(KEYS, OUTPUT), max_size=8, unique_by=lambda kv: kv[0]), st.randoms())
def test_merge_is_deterministic_and_concatenates_in_key_order(items: list[Any], rnd: Any) -> None:
    outputs = [(key, {p: e(c) for p, c in files.items()}) for key, files in items]
    shuffled = list(outputs)
    rnd.shuffle(shuffled)
    merged = merge_outputs(outputs)
    assert merged == merge_outputs(shuffled)
    for path, entry in merged.files.items():
        want = tuple(c * 64 for _, files in sorted(items) for p, c in files.items() if p == path)
        assert entry.chunks == want and entry.size == len(want)


# ---- merge_changes: the next merge made from this one by what changed ---------------------------

OUTPUT_PATHS = st.sampled_from(["/a", "/b", "/a/x", "/a/y", "/c/d", "/c", "/e"])
OUTPUTS = st.dictionaries(OUTPUT_PATHS, st.sampled_from(["1", "2", "", "3"]).map(lambda c: e(c) if c else e()),
                          max_size=3)


def _whole(outputs: dict[str, dict[str, FileEntry]]) -> Manifest | None:
    try:
        return merge_outputs(((key,), files) for key, files in outputs.items())
    except HerdError:
        return None


@given(st.dictionaries(st.sampled_from("pqrstu"), OUTPUTS, max_size=5), st.data())
def test_a_merge_by_changes_is_the_whole_merge_or_declines(before: dict[str, dict[str, FileEntry]], data: Any) -> None:
    # Given the outputs an earlier job merged (when they merged), and some datums gone and new
    try:
        first, shared = merged(((key,), files) for key, files in before.items())
    except HerdError:
        return
    gone = data.draw(st.sets(st.sampled_from(sorted(before) or ["p"])))
    new = data.draw(st.dictionaries(st.sampled_from("vwxyz"), OUTPUTS, max_size=3))
    after = {key: files for key, files in before.items() if key not in gone} | new
    # When the next merge is made from the first by those changes
    made = merge_changes(first, shared, [before[key] for key in gone if key in before], list(new.values()))
    # Then it is the whole merge of the outputs now (the same files and entries), or it declines
    # (and never declines what has no shared path, no clash and no path written twice)
    whole = _whole(after)
    if made is not None:
        assert whole is not None and dict(sorted(made.files.items())) == whole.files
    elif whole is not None:
        paths = [p for files in after.values() for p in files]
        touched = {p for key in gone if key in before for p in before[key]} | {p for f in new.values() for p in f}
        assert len(paths) != len(set(paths)) or touched & set(shared) or find_clash(first.files.keys() | touched)


def test_a_merge_by_changes_declines_a_shared_path_and_a_clash() -> None:
    first, shared = merged([(("/1",), out(the=e("a"))), (("/2",), out(the=e("b"), cat=e("c")))])
    assert shared == ("/the",)
    assert merge_changes(first, shared, [out(the=e("b"), cat=e("c"))], []) is None  # /the was written twice
    assert merge_changes(first, shared, [], [out(cat__x=e("d"))]) is None  # /cat would be a directory too
    assert merge_changes(first, shared, [], [out(the__y=e("d"))]) is None
    made = merge_changes(first, shared, [], [out(dog=e("d"))])
    assert made is not None and made.files["/dog"] == e("d") and made.files["/the"] == e("a", "b")
