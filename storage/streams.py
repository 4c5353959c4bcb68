"""The three stream adapters every layer shares (storage imports nothing of herd, so scheduler
and worker use them too):

- `ChunkStream`: an iterable of byte chunks read as a file (tar members from a generator, a
  file's chunk blobs one after another, docker's get_archive chunks);
- `PassThrough`: another stream's bytes passed on unchanged while callbacks see each block and
  the end (hash checks, hashing while uploading, progress), with its read errors mapped;
- `LazyStream`: a stream opened at its first read and closed at its end (a folder of uploads
  never holds one descriptor per file).

256 MiB files stream through these, so no byte is copied more than once on its way: `read`
hands out the source's own bytes object whenever it fits the request, and `readinto` copies
straight from a memoryview into the caller's buffer.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

BLOCK = 1024 * 1024
_EMPTY = memoryview(b"")

Buffer = bytes | bytearray | memoryview


class Reader(Protocol):
    """What the adapters read from: a binary file, an HTTP or S3 body (`readinto` is used
    when it has one)."""

    def read(self, size: int, /) -> bytes: ...

    def close(self) -> None: ...


def _check_open(stream: io.RawIOBase) -> None:
    if stream.closed:
        raise ValueError("I/O operation on closed stream")


def _view(buffer: Any) -> memoryview:
    view = memoryview(buffer)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class ChunkStream(io.RawIOBase):
    """An iterable of byte chunks, read as a file.

    `read(n)` and `readinto` return n bytes (pulling as many chunks as it takes) unless the
    chunks run out, because tarfile treats a short read as a truncated member. Closing closes the
    iterator (a generator runs its `finally`/`with` blocks) and then calls `on_close`.
    An exception the iterator raises reaches the reader unchanged.
    """

    def __init__(self, chunks: Iterable[Buffer], *, on_close: Callable[[], object] | None = None) -> None:
        super().__init__()
        self._chunks: Iterator[Buffer] = iter(chunks)
        self._rest = _EMPTY
        self._whole: bytes | None = None  # the current chunk while none of it was handed out
        self._on_close = on_close

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """Make `_rest` non-empty; False at the end of the chunks."""
        while not self._rest:
            chunk = next(self._chunks, None)
            if chunk is None:
                return False
            self._whole = chunk if type(chunk) is bytes else None
            self._rest = _view(chunk)
        return True

    def read(self, size: int | None = -1) -> bytes:
        _check_open(self)
        if size is None or size < 0:
            return self.readall()
        parts: list[bytes] = []
        left = size
        while left and self._fill():
            if self._whole is not None and len(self._rest) <= left:
                part, self._whole, self._rest = self._whole, None, _EMPTY  # the producer's own object
            else:
                part, self._rest, self._whole = bytes(self._rest[:left]), self._rest[left:], None
            parts.append(part)
            left -= len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readall(self) -> bytes:
        parts = []
        while self._fill():
            parts.append(self._whole if self._whole is not None else bytes(self._rest))
            self._rest, self._whole = _EMPTY, None
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        _check_open(self)
        view = _view(buffer)
        filled, want = 0, len(view)
        while filled < want and self._fill():
            n = min(want - filled, len(self._rest))
            view[filled:filled + n] = self._rest[:n]
            self._rest, self._whole = self._rest[n:], None
            filled += n
        return filled

    def close(self) -> None:
        if not self.closed:
            self._rest, self._whole = _EMPTY, None
            try:
                close = getattr(self._chunks, "close", None)
                if close is not None:
                    close()
            finally:
                if self._on_close is not None:
                    self._on_close()
        super().close()


class PassThrough(io.RawIOBase):
    """A stream's bytes, passed on unchanged while callbacks watch them go by.

    - `head`: bytes already read from `stream` (to sniff its size), passed on first.
    - `on_block(block)`: every block, once, in order, as immutable `bytes` (a hashing thread
      may keep it); `size` counts them.
    - `on_count(n)`: the size of every block (progress). Without `on_block`, `hold_last` or
      `head`, `readinto` goes straight to the stream's own `readinto`: no copy of ours at all.
    - `on_eof()`: when `stream` reaches its end, once unless it raises (a hash that does not
      match): then every later read meets the same check again, never a clean EOF.
    - `hold_last`: read `stream` in blocks of `block` and hand out a block only once the next
      one was read, so `on_eof` runs before the last block is handed out: a consumer of a bad
      blob meets the error, never a clean EOF after bad bytes.
    - `errors()`: a context manager around every read of `stream` (maps a library's errors
      to herd's, naming the key or URL).
    - `on_close()`: called by the first `close`, before `stream` is closed; `owns=False`
      leaves `stream` open (the caller's own source).
    """

    def __init__(
        self,
        stream: Reader,
        *,
        head: bytes = b"",
        on_block: Callable[[bytes], object] | None = None,
        on_eof: Callable[[], object] | None = None,
        on_count: Callable[[int], object] | None = None,
        hold_last: bool = False,
        block: int = BLOCK,
        errors: Callable[[], AbstractContextManager[object]] | None = None,
        on_close: Callable[[], object] | None = None,
        owns: bool = True,
    ) -> None:
        super().__init__()
        self._stream, self._head = stream, _view(head)
        self._on_block, self._on_eof, self._on_count = on_block, on_eof, on_count
        # Only counting: the stream may read straight into the caller's buffer.
        direct = on_block is None and not hold_last
        self._readinto: Callable[[memoryview], int | None] | None = (
            getattr(stream, "readinto", None) if direct else None
        )
        self._hold, self._block = hold_last, block
        self._errors = errors or nullcontext
        self._on_close, self._owns = on_close, owns
        self._ended = False  # on_eof was called
        self._ready = _EMPTY  # hold_last: the block being handed out
        self._held: bytes | None = None  # hold_last: the block read but not yet released
        self.size = 0

    def readable(self) -> bool:
        return True

    def _pass(self, chunk: Any) -> bytes:
        # A reused buffer would change under a callback that keeps it: hand out bytes only.
        data: bytes = chunk if type(chunk) is bytes else bytes(chunk)
        self.size += len(data)
        if self._on_block is not None:
            self._on_block(data)
        if self._on_count is not None:
            self._on_count(len(data))
        return data

    def _end(self) -> None:
        if not self._ended:
            if self._on_eof is not None:
                self._on_eof()  # raising leaves the stream unended: reading on raises again
            self._ended = True

    def read(self, size: int | None = -1) -> bytes:
        _check_open(self)
        if size is None or size < 0:
            return self.readall()
        if size == 0:
            return b""
        if self._hold:
            return self._read_held(size)
        if self._head:
            head, self._head = self._head[:size], self._head[size:]
            return self._pass(head)
        if self._ended:
            return b""
        with self._errors():
            data = self._stream.read(size)
        if data:
            return self._pass(data)
        self._end()
        return b""

    def readall(self) -> bytes:
        parts = []
        while data := self.read(self._block):
            parts.append(data)
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        _check_open(self)
        view = _view(buffer)
        if self._hold:
            if not self._advance_held():
                return 0
            n = min(len(view), len(self._ready))
            view[:n] = self._ready[:n]  # straight from the held block: one copy
            self._ready = self._ready[n:]
            return n
        if self._readinto is not None and not self._head and not self._ended and len(view):
            with self._errors():
                n = self._readinto(view) or 0
            if not n:
                self._end()
                return 0
            self.size += n
            if self._on_count is not None:
                self._on_count(n)
            return n
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def _read_held(self, size: int) -> bytes:
        if not self._advance_held():
            return b""
        ready = self._ready
        if len(ready) <= size and ready.obj is not None and len(ready) == len(ready.obj):  # type: ignore[arg-type]
            self._ready = _EMPTY
            return ready.obj  # type: ignore[return-value]  # the whole block: no copy
        self._ready = ready[size:]
        return bytes(ready[:size])

    def _advance_held(self) -> bool:
        """Make `_ready` non-empty; False at the end (after `on_eof` passed)."""
        while not self._ready:
            if self._ended:
                return False
            if self._head:
                chunk: Any = self._head
                self._head = _EMPTY
            else:
                with self._errors():
                    chunk = self._stream.read(self._block)
            if chunk:
                held, self._held = self._held, self._pass(chunk)
                if held:
                    self._ready = memoryview(held)
                continue
            self._end()
            if self._held:
                self._ready, self._held = memoryview(self._held), None
        return True

    def close(self) -> None:
        if not self.closed:
            self._ready, self._held, self._head = _EMPTY, None, _EMPTY
            try:
                if self._on_close is not None:
                    self._on_close()
            finally:
                if self._owns:
                    self._stream.close()
        super().close()


class LazyStream(io.RawIOBase):
    """A stream opened by `opener()` at its first read and closed at its end (or on close).

    `readinto` goes straight to the opened stream's own `readinto`: no copy of ours at all.
    """

    def __init__(self, opener: Callable[[], io.RawIOBase | io.BufferedIOBase]) -> None:
        super().__init__()
        self._opener = opener
        self._handle: io.RawIOBase | io.BufferedIOBase | None = None
        self._done = False

    def readable(self) -> bool:
        return True

    def _open(self) -> io.RawIOBase | io.BufferedIOBase | None:
        if self._done:
            return None
        if self._handle is None:
            self._handle = self._opener()
        return self._handle

    def _finish(self) -> None:
        handle, self._handle, self._done = self._handle, None, True
        if handle is not None:
            handle.close()

    def read(self, size: int | None = -1) -> bytes:
        _check_open(self)
        handle = self._open()
        if handle is None or size == 0:
            return b""
        data = handle.read(-1 if size is None else size)
        if not data:
            self._finish()
            return b""
        if size is None or size < 0:
            self._finish()  # read(-1) read it all
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        _check_open(self)
        handle = self._open()
        if handle is None:
            return 0
        n = handle.readinto(buffer)
        if not n:
            self._finish()
        return n or 0

    def close(self) -> None:
        if not self.closed:
            handle, self._handle = self._handle, None
            if handle is not None:
                handle.close()
        super().close()
