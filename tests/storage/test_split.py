"""put-file --split: the pure splitter (hypothesis against a plain reference) and `put_split`
over every backend (memory, local folder, moto S3 over HTTP)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.errors import CommitFinished, InvalidArgument
from storage.model import FileEntry, Manifest
from storage.objects import ObjectStore
from storage.repos import Pfs
from storage.split import chunk_name, next_index, split_stream
from storage.split_put import put_split, split_ops


def blocks_of(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    """`data` cut at the given offsets (any block sizes, empty ones never)."""
    last = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}):
        if cut > last:
            yield data[last:cut]
            last = cut
    if last < len(data):
        yield data[last:]


def chunks(pieces: Iterator[tuple[int, bytes]]) -> list[bytes]:
    out: list[bytearray] = []
    for index, piece in pieces:
        assert piece, "pieces are never empty"
        if index == len(out):
            out.append(bytearray())
        assert index == len(out) - 1, "a chunk's pieces come together, chunks in order"
        out[index] += piece
    return [bytes(c) for c in out]


def reference(datums: list[bytes], per_chunk: int, target_bytes: int) -> list[bytes]:
    """Pachyderm's loop, datum by datum."""
    out, current, count = [], b"", 0
    for datum in datums:
        current += datum
        count += 1
        if (not per_chunk and not target_bytes) or (per_chunk and count >= per_chunk) or (
                target_bytes and len(current) >= target_bytes):
            out.append(current)
            current, count = b"", 0
    if current:
        out.append(current)
    return out


lines_text = st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), max_size=30)


@settings(max_examples=300, deadline=None)
@given(lines_text, st.booleans(), st.lists(st.integers(min_value=0), max_size=8),
       st.integers(min_value=0, max_value=5), st.integers(min_value=0, max_value=40))
def test_lines_split_as_pachyderm_does(lines: list[bytes], last_newline: bool, cuts: list[int],
                                      per_chunk: int, target_bytes: int) -> None:
    data = b"\n".join(lines) + (b"\n" if last_newline and lines else b"")
    datums = [line + b"\n" for line in data.split(b"\n")]  # only "\n" ends a line (not "\r")
    datums[-1] = datums[-1][:-1]
    datums = [d for d in datums if d]
    got = chunks(split_stream(blocks_of(data, cuts), "line", per_chunk, target_bytes))
    assert got == reference(datums, per_chunk, target_bytes)
    assert b"".join(got) == data  # nothing lost, nothing added


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
separators = st.sampled_from([" ", "\n", "\t", "\r\n", "  \n "])


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values, max_size=12), st.data(), st.lists(st.integers(min_value=0), max_size=8),
       st.integers(min_value=0, max_value=4), st.integers(min_value=0, max_value=60))
def test_json_values_split_raw(values: list[Any], data: Any, cuts: list[int], per_chunk: int,
                               target_bytes: int) -> None:
    raws = [json.dumps(v, ensure_ascii=data.draw(st.booleans())).encode() for v in values]
    text = b"".join(r + data.draw(separators).encode() for r in raws)
    got = chunks(split_stream(blocks_of(text, cuts), "json", per_chunk, target_bytes))
    # Each datum is the value's own bytes (Go's json.RawMessage): separators are dropped.
    assert got == reference(raws, per_chunk, target_bytes)


def test_adjacent_values_and_escaped_quotes() -> None:
    text = b'{"a":"}\\"{"}[1,[2]]"s\\\\"12 true\nnull'
    got = chunks(split_stream(blocks_of(text, [1, 2, 3, 5, 8, 13]), "json"))
    assert got == [b'{"a":"}\\"{"}', b"[1,[2]]", b'"s\\\\"', b"12", b"true", b"null"]


@pytest.mark.parametrize(("text", "line", "why"), [
    (b'{"a": 1}\n{"b": }\n', 2, "not valid JSON"),
    (b'{"a": 1}\n\n\n{"b": 2', 4, "ends inside"),
    (b'[1,\n2,\n3,,\n]', 3, "not valid JSON"),
    (b'1 }', 1, "unexpected '}'"),
    (b'true\ntru', 2, "not valid JSON"),
    (b'"\xff\xfe"', 1, "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, 1, "not valid JSON"),
])
def test_bad_json_names_the_line(text: bytes, line: int, why: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        list(split_stream(blocks_of(text, [3, 7]), "json", source="data.json"))
    assert f"'data.json' line {line}:" in err.value.message
    assert why in err.value.message


def test_negative_limits_and_unknown_mode_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        split_stream([b"a\n"], "line", -1)
    with pytest.raises(InvalidArgument):
        split_stream([b"a\n"], "csv")  # type: ignore[arg-type]


def test_a_huge_line_streams_in_pieces() -> None:
    block = b"x" * 1024
    pieces = split_stream(iter([block] * 1000 + [b"\n"]), "line", 1)
    assert all(len(piece) <= 1024 for _, piece in pieces)


# ---- naming chunks ---------------------------------------------------------------------------


def test_chunk_names_and_next_index() -> None:
    assert chunk_name(0) == "0000000000000000" and chunk_name(255) == "00000000000000ff"
    files = {"/d/0000000000000000": 1, "/d/000000000000000a": 1, "/dx": 1, "/e/f": 1}
    assert next_index(files, "/d") == 11
    assert next_index(files, "/new") == 0
    with pytest.raises(InvalidArgument, match="'/e/f', which is not a split chunk"):
        next_index(files, "/e")
    with pytest.raises(InvalidArgument, match="is a file"):
        next_index(files, "/dx")
    with pytest.raises(InvalidArgument, match="not a split chunk"):
        next_index({"/d/0000000000000000/x": 1}, "/d")


def entry(n: int) -> FileEntry:
    return FileEntry(chunks=(f"{n:064x}",), size=n)


def test_split_ops_replace_or_continue() -> None:
    view = Manifest(files={"/d/0000000000000004": entry(1)})
    replace = split_ops(view, [("/d", [entry(2), entry(3)])], append=False)
    assert [(op.op, op.path) for op in replace] == [
        ("delete", "/d"), ("put", "/d/0000000000000000"), ("put", "/d/0000000000000001")]
    cont = split_ops(view, [("/d", [entry(2)]), ("/d", [entry(3)])], append=True)
    assert [op.path for op in cont] == ["/d/0000000000000005", "/d/0000000000000006"]
    twice = split_ops(view, [("/d", [entry(2)]), ("/d", [entry(3)])], append=False)
    assert [op.path for op in twice] == ["/d", "/d/0000000000000000", "/d/0000000000000001"]


# ---- put_split on every backend ----------------------------------------------------------------


@pytest.fixture
def pfs(object_store: ObjectStore) -> Pfs:
    pfs = Pfs(object_store)
    pfs.create_repo("data")
    return pfs


def tree(pfs: Pfs, ref: str = "master") -> dict[str, bytes]:
    manifest = pfs.read_manifest(pfs.inspect_commit("data", ref))
    out = {}
    for path in manifest.files:
        with pfs.open_file("data", ref, path) as handle:
            out[path] = handle.read()
    return out


def stored(store: ObjectStore) -> dict[str, bytes]:
    return {key: store.get(key) for key in store.list("")}


def test_put_split_lines_then_append_continues(pfs: Pfs) -> None:
    put_split(pfs.files, "data", "master", [("/l", io.BytesIO(b"a\nb\nc\n"), "x")], "line", 2)
    assert tree(pfs) == {"/l/0000000000000000": b"a\nb\n", "/l/0000000000000001": b"c\n"}
    put_split(pfs.files, "data", "master", [("/l", io.BytesIO(b"d\ne"), "x")], "line", append=True)
    assert tree(pfs) == {"/l/0000000000000000": b"a\nb\n", "/l/0000000000000001": b"c\n",
                         "/l/0000000000000002": b"d\n", "/l/0000000000000003": b"e"}
    # Without append the directory is replaced (herd's put-file overwrites by default)
    put_split(pfs.files, "data", "master", [("/l", io.BytesIO(b"z\n"), "x")], "line")
    assert tree(pfs) == {"/l/0000000000000000": b"z\n"}
    assert len(pfs.list_commits("data", "master")) == 3


def test_put_split_json_in_an_open_commit(pfs: Pfs) -> None:
    commit = pfs.start_commit("data", "master")
    put_split(pfs.files, "data", commit.id, [("/j", io.BytesIO(b'{"a": 1} {"b": 2}\n[3]'), "x")],
              "json", target_bytes=9)
    put_split(pfs.files, "data", "master", [("/j", io.BytesIO(b"4"), "x")], "json", append=True)
    pfs.finish_commit("data", commit.id)
    assert tree(pfs) == {"/j/0000000000000000": b'{"a": 1}{"b": 2}', "/j/0000000000000001": b"[3]",
                         "/j/0000000000000002": b"4"}


class Pipe(io.RawIOBase):
    """A stream that cannot seek, as stdin from a pipe cannot."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._data.readinto(buffer)


def test_bad_input_changes_nothing(pfs: Pfs, object_store: ObjectStore) -> None:
    put_split(pfs.files, "data", "master", [("/j", io.BytesIO(b"1 2"), "x")], "json")
    before = stored(object_store)
    unseekable = io.BufferedReader(Pipe(b'{"ok": 1}\n' * 200_000 + b'{"bad"}\n'))
    with pytest.raises(InvalidArgument, match="'in.json' line 200001"):
        put_split(pfs.files, "data", "master", [("/j", unseekable, "in.json")], "json", append=True)
    assert stored(object_store) == before
    with pytest.raises(InvalidArgument, match="is a file"):
        put_split(pfs.files, "data", "master", [("/j/0000000000000000", io.BytesIO(b"a\n"), "x")], "line",
                  append=True)
    with pytest.raises(InvalidArgument, match="root directory"):
        put_split(pfs.files, "data", "master", [("/", io.BytesIO(b"a\n"), "x")], "line")
    with pytest.raises(InvalidArgument, match="both a file and a directory"):
        put_split(pfs.files, "data", "master", [("/j/0000000000000000/x", io.BytesIO(b"a\n"), "x")], "line")
    assert stored(object_store) == before  # refused before a chunk was stored
    pfs.put_file("data", "master", "/other/plain.txt", b"x")
    after_plain = stored(object_store)
    with pytest.raises(InvalidArgument, match="not a split chunk"):
        put_split(pfs.files, "data", "master", [("/other", io.BytesIO(b"a\n"), "x")], "line", append=True)
    assert stored(object_store) == after_plain
    assert set(after_plain) - set(before)  # (the plain put did change the store)
    with pytest.raises(CommitFinished):
        put_split(pfs.files, "data", pfs.inspect_commit("data", "master").id,
                  [("/k", io.BytesIO(b"a\n"), "x")], "line")
