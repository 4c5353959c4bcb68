"""The three shared stream adapters (storage/streams.py): any chunking and any read sizes give
the same bytes, callbacks see every byte once and in order, and close releases what was opened."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.errors import DataCorrupted
from storage.streams import ChunkStream, LazyStream, PassThrough
from tests.fakes import ShortReads

chunkings = st.lists(st.binary(max_size=300), max_size=12)
# how a consumer reads: read(n), readinto(a buffer of n), or through a BufferedReader of n
reads = st.lists(st.tuples(st.sampled_from(["read", "readinto"]), st.integers(min_value=1, max_value=700)),
                 min_size=1, max_size=40)


def drain(stream: io.RawIOBase | io.BufferedIOBase, how: list[tuple[str, int]]) -> bytes:
    """Read to EOF with the given pattern of calls, cycling through it."""
    out = bytearray()
    i = 0
    while True:
        kind, n = how[i % len(how)]
        i += 1
        if kind == "read":
            data = stream.read(n)
            assert data is not None and len(data) <= n
            got = len(data)
            out += data
        else:
            buffer = bytearray(n)
            got = stream.readinto(memoryview(buffer)) or 0
            assert got <= n
            out += buffer[:got]
        if not got:
            return bytes(out)


@given(chunkings, reads)
def test_chunk_stream_gives_the_chunks_bytes_for_any_reads(chunks: list[bytes], how: list[tuple[str, int]]) -> None:
    assert drain(ChunkStream(chunks), how) == b"".join(chunks)


@given(chunkings, st.integers(min_value=1, max_value=700))
def test_chunk_stream_reads_are_full_until_the_end(chunks: list[bytes], n: int) -> None:
    # tarfile takes a short read for a truncated member: every read but the last is full
    whole = b"".join(chunks)
    stream = ChunkStream(iter(chunks))
    pieces = list(iter(lambda: stream.read(n), b""))
    assert b"".join(pieces) == whole
    assert all(len(p) == n for p in pieces[:-1])


@given(chunkings, st.integers(min_value=1, max_value=4096))
def test_chunk_stream_through_a_buffered_reader(chunks: list[bytes], size: int) -> None:
    reader = io.BufferedReader(ChunkStream(chunks), size)
    assert reader.read() == b"".join(chunks)


def test_chunk_stream_hands_out_a_whole_chunk_without_copying() -> None:
    block = bytes(range(256)) * 64
    assert ChunkStream([block]).read(len(block)) is block


def test_chunk_stream_readall_and_bytes_like_chunks() -> None:
    assert ChunkStream([b"ab", bytearray(b"cd"), memoryview(b"ef")]).read() == b"abcdef"


def test_closing_a_chunk_stream_closes_its_generator_and_calls_on_close() -> None:
    events: list[str] = []

    def chunks() -> Iterator[bytes]:
        try:
            yield b"one"
            yield b"two"
        finally:
            events.append("generator closed")

    stream = ChunkStream(chunks(), on_close=lambda: events.append("on_close"))
    assert stream.read(2) == b"on"
    stream.close()
    stream.close()  # twice is fine
    assert events == ["generator closed", "on_close"] and stream.closed
    with pytest.raises(ValueError):
        stream.read(1)


def test_an_error_of_the_chunks_reaches_the_reader() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"fine"
        raise DataCorrupted("blob 'x' is corrupt")

    stream = io.BufferedReader(ChunkStream(chunks()))
    with pytest.raises(DataCorrupted, match="blob 'x'"):
        stream.read()


@given(chunkings, st.binary(max_size=300), reads, st.booleans())
def test_pass_through_passes_every_byte_and_shows_each_once(
    chunks: list[bytes], head: bytes, how: list[tuple[str, int]], hold_last: bool
) -> None:
    seen: list[bytes] = []
    counted: list[int] = []
    ends: list[int] = []
    source = ChunkStream(chunks)
    stream = PassThrough(source, head=head, on_block=seen.append, on_count=counted.append,
                         on_eof=lambda: ends.append(len(b"".join(seen))), hold_last=hold_last, block=97)
    whole = head + b"".join(chunks)
    assert drain(stream, how) == whole
    assert b"".join(seen) == whole and sum(counted) == len(whole) == stream.size
    assert all(type(block) is bytes for block in seen)
    assert ends == [len(whole)]  # once, at the end
    assert stream.read(10) == b"" and ends == [len(whole)]


@given(chunkings, reads)
def test_pass_through_over_short_reads(chunks: list[bytes], how: list[tuple[str, int]]) -> None:
    # a pipe's short reads, through the direct readinto path (only a count to report)
    counted: list[int] = []
    stream = PassThrough(ShortReads(b"".join(chunks), step=37), on_count=counted.append)
    assert drain(stream, how) == b"".join(chunks) and sum(counted) == len(b"".join(chunks))


def test_pass_through_hands_out_a_held_block_without_copying() -> None:
    blocks: list[bytes] = []
    stream = PassThrough(io.BytesIO(b"x" * 100), on_block=blocks.append, hold_last=True, block=100)
    assert stream.read(100) is blocks[0]


def test_hold_last_keeps_the_last_block_until_the_check_passes() -> None:
    # Given a check at the end that fails
    def check() -> None:
        raise DataCorrupted("blob 'b' is corrupt")

    stream = PassThrough(io.BytesIO(b"a" * 10 + b"b" * 10 + b"c" * 5), on_eof=check, hold_last=True, block=10)
    # Then every block before the last one is handed out, the last never: reading on raises
    assert stream.read(10) == b"a" * 10
    assert stream.read(10) == b"b" * 10
    for _ in range(2):
        with pytest.raises(DataCorrupted):
            stream.read(10)


def test_a_failing_end_check_without_holding_raises_on_every_read_at_the_end() -> None:
    def check() -> None:
        raise DataCorrupted("short")

    stream = PassThrough(io.BytesIO(b"abc"), on_eof=check)
    assert stream.read(10) == b"abc"
    for _ in range(2):
        with pytest.raises(DataCorrupted):
            stream.read(10)


def test_errors_map_read_failures() -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: object) -> int:
            raise ConnectionResetError("peer went away")

    from contextlib import contextmanager

    @contextmanager
    def mapped() -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise DataCorrupted(f"reading 'key' failed: {exc}") from exc

    for reader in (lambda s: s.read(5), lambda s: s.readinto(bytearray(5))):
        with pytest.raises(DataCorrupted, match="reading 'key' failed: peer went away"):
            reader(PassThrough(Broken(), errors=mapped))


def test_close_calls_on_close_then_closes_the_stream_unless_not_owned() -> None:
    events: list[str] = []
    inner = io.BytesIO(b"abc")
    stream = PassThrough(inner, on_close=lambda: events.append(f"on_close, inner closed={inner.closed}"))
    stream.close()
    stream.close()
    assert events == ["on_close, inner closed=False"] and inner.closed and stream.closed
    kept = io.BytesIO(b"abc")
    PassThrough(kept, owns=False).close()
    assert not kept.closed


def test_lazy_stream_opens_at_first_read_and_closes_at_the_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    opened: list[io.BufferedReader] = []
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")

    def opener() -> io.BufferedReader:
        opened.append(open(path, "rb"))
        return opened[-1]

    stream = LazyStream(opener)
    assert not opened  # nothing open yet
    buffer = bytearray(4)
    assert stream.readinto(buffer) == 4 and buffer == b"0123" and len(opened) == 1
    assert stream.read(100) == b"456789"
    assert not opened[0].closed
    assert stream.read(100) == b"" and opened[0].closed  # closed at its end, never reopened
    assert stream.read(100) == b"" and len(opened) == 1
    stream.close()


@given(st.binary(max_size=2000), reads)
def test_lazy_stream_gives_the_bytes_for_any_reads(data: bytes, how: list[tuple[str, int]]) -> None:
    assert drain(LazyStream(lambda: io.BytesIO(data)), how) == data


def test_closing_a_lazy_stream_early_closes_what_it_opened() -> None:
    inner = io.BytesIO(b"abcdef")
    stream = LazyStream(lambda: inner)
    assert stream.read(2) == b"ab"
    stream.close()
    assert inner.closed
    never = LazyStream(lambda: pytest.fail("opened without a read"))
    never.close()
