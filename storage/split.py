"""`put-file --split line|json`: cutting a byte stream into chunk files (pure, no I/O).

Pachyderm 1.x (pfs server putFile) reads datums one by one - a line with its newline, or one
JSON value's raw bytes (no whitespace between values is kept) - and closes a chunk after the
datum that reaches `--target-file-datums` or `--target-file-bytes` (a datum is never cut in
two); with neither limit, every datum is a chunk of its own. Chunks are files named by a
16-hex-digit counter below the target path, continuing after the highest existing one.

Everything here streams: a chunk is handed out as pieces, never held whole. Only one JSON value
is held at a time (it must be parsed to be validated).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

from storage.errors import InvalidArgument
from storage.paths import dir_prefix, printable

SplitMode = Literal["line", "json"]
SPLIT_MODES: tuple[SplitMode, ...] = ("line", "json")
INDEX_WIDTH = 16  # Pachyderm's "%016x"
_INDEX_RE = re.compile(r"[0-9a-f]{%d}" % INDEX_WIDTH)


def chunk_name(index: int) -> str:
    """A chunk's file name: its index as 16 zero-padded lower-case hex digits."""
    return f"{index:0{INDEX_WIDTH}x}"


def next_index(files: Mapping[str, object], directory: str) -> int:
    """The index the next chunk below `directory` gets: one past the highest there (0 if none).

    InvalidArgument naming the entry when the directory holds anything but chunk files (as
    Pachyderm refuses to split into a directory of other data), or when it is a file."""
    if directory in files:
        raise InvalidArgument(
            f"cannot split into '{printable(directory)}': it is a file, not a directory of split chunks"
        )
    prefix = dir_prefix(directory)
    highest = -1
    for name in files:
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        if "/" in rest or not _INDEX_RE.fullmatch(rest):
            raise InvalidArgument(
                f"cannot split into '{printable(directory)}': it holds '{printable(name)}', which is not "
                f"a split chunk (16 hex digits); split into an empty or new path"
            )
        highest = max(highest, int(rest, 16))
    return highest + 1


def split_stream(
    blocks: Iterable[bytes],
    mode: SplitMode,
    target_datums: int = 0,
    target_bytes: int = 0,
    source: str = "stdin",
) -> Iterator[tuple[int, bytes]]:
    """(chunk number from 0, piece) for every piece of every chunk, in order.

    The pieces of one chunk come one after another and are never empty; concatenated they are
    the chunk. `source` names the input in errors (InvalidArgument for JSON that does not parse,
    naming the line)."""
    if target_datums < 0 or target_bytes < 0:
        raise InvalidArgument("--target-file-datums and --target-file-bytes must not be negative")
    if mode == "line":
        return _split_lines(blocks, target_datums, target_bytes)
    if mode == "json":
        return _group(_json_values(blocks, source), target_datums, target_bytes)
    raise InvalidArgument(f"invalid --split '{mode}': expected one of {', '.join(SPLIT_MODES)}")


def _split_lines(blocks: Iterable[bytes], target_datums: int, target_bytes: int) -> Iterator[tuple[int, bytes]]:
    # Datums (a line and its newline) closing no chunk pass through in one piece per block.
    per_chunk = target_datums if target_datums or target_bytes else 1
    chunk = datums = size = 0
    for block in blocks:
        pos = 0
        while pos < len(block):
            end = _closing_newline(block, pos, per_chunk - datums if per_chunk else 0,
                                   max(target_bytes - size - 1, 0) if target_bytes else -1)
            if end < 0:
                datums += block.count(b"\n", pos)
                size += len(block) - pos
                yield chunk, block[pos:]
                break
            yield chunk, block[pos:end + 1]
            chunk, datums, size, pos = chunk + 1, 0, 0, end + 1


def _closing_newline(block: bytes, pos: int, nth: int, skip: int) -> int:
    """The index of the newline in block[pos:] that closes the chunk, or -1: the `nth` newline
    (nth > 0), or the first at least `skip` bytes on (skip >= 0), whichever comes first."""
    best = -1
    if skip >= 0:
        best = block.find(b"\n", pos + skip)
    if nth > 0:
        found, at = 0, pos
        limit = best if best >= 0 else len(block)
        while found < nth:
            at = block.find(b"\n", at, limit)
            if at < 0:
                break
            found += 1
            if found == nth:
                return at
            at += 1
    return best


def _group(datums: Iterable[bytes], target_datums: int, target_bytes: int) -> Iterator[tuple[int, bytes]]:
    """Whole datums into chunks, by the same closing rule as lines."""
    chunk = count = size = 0
    for datum in datums:
        yield chunk, datum
        count += 1
        size += len(datum)
        no_limit = not target_datums and not target_bytes
        if no_limit or (target_datums and count >= target_datums) or (target_bytes and size >= target_bytes):
            chunk, count, size = chunk + 1, 0, 0


_WHITESPACE = b" \t\n\r"
_STRUCTURAL = re.compile(rb'[{}\[\]"]')
_STRING_END = re.compile(rb'["\\]')
_SCALAR_END = re.compile(rb'[ \t\n\r{}\[\]",:]')


def _json_values(blocks: Iterable[bytes], source: str) -> Iterator[bytes]:
    """The raw bytes of each top-level JSON value (what Go's json.RawMessage keeps), each checked
    with json.loads; whitespace between values is dropped. One value is buffered at a time."""
    scanner = _JsonScanner(source)
    for block in blocks:
        yield from scanner.feed(block)
    yield from scanner.finish()


class _JsonScanner:
    """Finds where top-level JSON values end, across blocks, without parsing them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.buffer = bytearray()  # the value being read (from its first byte)
        self.line = 1  # the line the next unread byte is on
        self.start_line = 1  # the line the buffered value started on
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.scanned = 0  # bytes of `buffer` already scanned

    def feed(self, block: bytes) -> Iterator[bytes]:
        pos = 0
        while pos < len(block):
            if not self.buffer:  # between values: skip whitespace, note lines
                start = pos
                while pos < len(block) and block[pos] in _WHITESPACE:
                    pos += 1
                self.line += block.count(b"\n", start, pos)
                if pos == len(block):
                    return
                self.start_line = self.line
                if block[pos] in b"]},:":
                    self._fail(f"unexpected {chr(block[pos])!r} where a JSON value should start")
            end = self._value_end(block, pos)
            if end < 0:
                self.buffer += block[pos:]
                return
            self.buffer += block[pos:end]
            yield self._take()
            pos = end

    def finish(self) -> Iterator[bytes]:
        if not self.buffer:
            return
        if self.depth or self.in_string:
            self._fail("the input ends inside this JSON value")
        yield self._take()

    def _value_end(self, block: bytes, pos: int) -> int:
        """Where in `block` the buffered value (continued at `pos`) ends, or -1: not in it."""
        first = self.buffer[0] if self.buffer else block[pos]
        if first not in b'{["':  # a number, true/false/null (or garbage json.loads will name)
            found = _SCALAR_END.search(block, pos + (0 if self.buffer else 1))
            return found.start() if found else -1
        at = pos
        while at < len(block):
            if self.in_string:
                if self.escaped:
                    self.escaped, at = False, at + 1
                    continue
                found = _STRING_END.search(block, at)
                if found is None:
                    return -1
                at = found.start()
                if block[at] == ord("\\"):
                    self.escaped = True
                else:
                    self.in_string = False
                    if self.depth == 0:  # a top-level string
                        return at + 1
                at += 1
                continue
            found = _STRUCTURAL.search(block, at)
            if found is None:
                return -1
            at = found.start()
            char = block[at]
            if char == ord('"'):
                self.in_string = True
            elif char in b"{[":
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth <= 0:
                    self.depth = 0
                    return at + 1
            at += 1
        return -1

    def _take(self) -> bytes:
        value = bytes(self.buffer)
        self.buffer.clear()
        self.depth, self.in_string, self.escaped = 0, False, False
        try:
            json.loads(value)
        except (ValueError, RecursionError) as exc:
            self._fail(self._why(exc), exc)
        self.line += value.count(b"\n")
        return value

    def _why(self, exc: Exception) -> str:
        if isinstance(exc, json.JSONDecodeError):
            self.start_line += exc.lineno - 1
            return f"not valid JSON: {exc.msg} (column {exc.colno})"
        if isinstance(exc, RecursionError):
            return "not valid JSON: nested too deeply"
        return f"not valid JSON: {exc}"

    def _fail(self, why: str, cause: Exception | None = None) -> None:
        raise InvalidArgument(
            f"put-file --split json: '{printable(self.source)}' line {self.start_line}: {why}"
        ) from cause
