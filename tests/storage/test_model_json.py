"""Manifest.canonical_bytes (pydantic-core) writes exactly what canonical_json (the json module,
sorted keys) writes: every stored manifest id was taken over those bytes, so one byte of
difference would strand them all."""

from __future__ import annotations


from hypothesis import given
from hypothesis import strategies as st

from storage.model import FileEntry, Manifest, canonical_json, sha256_hex

hexes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
# Paths as herd never makes them too: control characters, quotes, backslashes, DEL, non-BMP,
# U+2028 - the escapes of both writers must agree on all of them.
paths = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30).map(lambda text: "/" + text)
slices = st.one_of(st.none(), st.tuples(hexes, st.integers(0, 2**40), st.integers(0, 2**20)))


@st.composite
def entries(draw: st.DrawFn) -> FileEntry:
    chunks = tuple(draw(st.lists(hexes, max_size=3)))
    packed = tuple(draw(slices) for _ in chunks) if chunks and draw(st.booleans()) else ()
    return FileEntry(chunks=chunks, size=draw(st.integers(0, 2**50)), packed=packed)


@given(st.dictionaries(paths, entries(), max_size=8))
def test_canonical_bytes_equal_the_json_modules(files: dict[str, FileEntry]) -> None:
    manifest = Manifest(files=files)
    assert manifest.canonical_bytes() == canonical_json(manifest.model_dump(mode="json"))


def test_the_bytes_of_known_manifests_are_pinned() -> None:
    # Ids format 1 wrote: an empty manifest and a one-file one (computed by canonical_json)
    assert Manifest().canonical_bytes() == b'{"files":{}}'
    one = Manifest(files={"/b\u00e9\n\"x": FileEntry(chunks=("ab" * 32,), size=3), "/a": FileEntry(chunks=(), size=0)})
    expected = ('{"files":{"/a":{"chunks":[],"size":0},"/b\u00e9\\n\\"x":{"chunks":["' + "ab" * 32 + '"],"size":3}}}').encode()
    assert one.canonical_bytes() == expected
    assert one.id == sha256_hex(expected)
