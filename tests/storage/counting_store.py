"""A wrapper over any ObjectStore that counts the bytes moved, for tests that bound transfers.

It lives with the tests: nothing in production counts bytes this way.
"""

from __future__ import annotations

import builtins
import io
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from storage.objects import IncompleteUpload, ObjectInfo, ObjectStore


class CountingStore:
    """Counts bytes written to (`bytes_in`) and read from (`bytes_out`) an inner store."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.bytes_in = 0
        self.bytes_out = 0
        self._lock = threading.Lock()

    def _count(self, written: int = 0, read: int = 0) -> None:
        with self._lock:
            self.bytes_in += written
            self.bytes_out += read

    def put(self, key: str, data: bytes) -> None:
        """Write through, counting the body."""
        self.inner.put(key, data)
        self._count(written=len(data))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create-only write; counted only when it wrote."""
        created = self.inner.put_if_absent(key, data)
        self._count(written=len(data) if created else 0)
        return created

    def put_chunks_if_absent(self, key: str, chunks: Iterable[bytes]) -> bool:
        """Create-only write of the chunks; counted only when it wrote."""
        passed = [0]

        def counted() -> Iterator[bytes]:
            for chunk in chunks:
                passed[0] += len(chunk)
                yield chunk

        created = self.inner.put_chunks_if_absent(key, counted())
        self._count(written=passed[0] if created else 0)
        return created

    def put_file(self, key: str, path: Path) -> None:
        """Upload a file, counting its size."""
        self.inner.put_file(key, path)
        self._count(written=Path(path).stat().st_size)

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        """Upload a stream, counting the bytes that passed."""
        counted = _CountingReader(stream, lambda n: self._count(written=n))
        self.inner.put_stream(key, counted)  # type: ignore[arg-type]

    def get(self, key: str) -> bytes:
        """Read through, counting the body."""
        data = self.inner.get(key)
        self._count(read=len(data))
        return data

    def get_file(self, key: str, path: Path) -> None:
        """Download to a file, counting its size."""
        self.inner.get_file(key, path)
        self._count(read=Path(path).stat().st_size)

    def open(self, key: str) -> BinaryIO:
        """A reader that counts what is actually read."""
        reader = _CountingReader(self.inner.open(key), lambda n: self._count(read=n))
        return io.BufferedReader(reader)  # type: ignore[return-value]

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """A ranged read, counting its size."""
        data = self.inner.get_range(key, offset, length)
        self._count(read=len(data))
        return data

    def exists(self, key: str) -> bool:
        """Whether `key` exists."""
        return self.inner.exists(key)

    def list(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix`, sorted."""
        return self.inner.list(prefix)

    def list_children(self, prefix: str) -> builtins.list[str]:
        """Names one level below `prefix`."""
        return self.inner.list_children(prefix)

    def delete(self, key: str) -> None:
        """Remove `key`."""
        self.inner.delete(key)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """Body and token, counting the body."""
        found = self.inner.read_versioned(key)
        self._count(read=len(found[0]) if found else 0)
        return found

    def compare_and_set(self, key: str, token: str | None, data: bytes) -> bool:
        """CAS write; counted only when it wrote."""
        written = self.inner.compare_and_set(key, token, data)
        self._count(written=len(data) if written else 0)
        return written

    def local_path(self, key: str) -> Path | None:
        """The inner store's file for `key` (reads through it are not counted)."""
        return self.inner.local_path(key)

    def list_with_times(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every key under `prefix` with size and write time."""
        return self.inner.list_with_times(prefix)

    def incomplete_uploads(self) -> Iterator[IncompleteUpload]:
        """The inner store's unfinished writes."""
        return self.inner.incomplete_uploads()

    def abort_upload(self, upload: IncompleteUpload) -> None:
        """Remove an unfinished write of the inner store."""
        self.inner.abort_upload(upload)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set (copy/pickle): no recursion
            raise AttributeError(name)
        # Optional capabilities of the inner store (e.g. LocalObjectStore.rename) pass through.
        return getattr(self.inner, name)


class _CountingReader(io.RawIOBase):
    def __init__(self, stream: BinaryIO, count: Any) -> None:
        self._stream, self._count_bytes = stream, count

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._stream.read(len(buffer))
        buffer[: len(chunk)] = chunk
        self._count_bytes(len(chunk))
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()
