"""The client halves of streamed files: request bodies built on the fly, downloads checked.

Uploads: one file's bytes as the body, or many as a tar stream written block by block (headers
from tarfile, the bytes read from each source as the body is sent), never a whole file in
memory. A tar header needs the member's size first: a stream of unknown length is spooled to a
temp file on disk. Downloads: what arrives is counted and, when the server names the sha256 of
the bytes, hashed; a short body or a wrong hash is DataCorrupted (exit 8), and a local file is
only renamed into place once all of it checked out.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from storage.blobs import CHUNK, new_temp_file
from storage.errors import DataCorrupted, InvalidArgument
from storage.paths import printable

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

HASH_HEADER, COMMIT_HEADER, SHA256_HEADER = "X-Herd-Hash", "X-Herd-Commit", "X-Herd-Sha256"



class Answer(Protocol):
    """What a download needs of the streamed response (httpx.Response: only client.py imports httpx)."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    def iter_raw(self, chunk_size: int | None = None) -> Iterator[bytes]: ...


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


Opener = Callable[[], AbstractContextManager[Readable]]
# (herd path, size, opener): a member of an upload's tar stream
Member = tuple[str, int, Opener]


def source_blocks(source: Any) -> Iterator[bytes]:
    """A put-file source (Path, bytes or a readable stream) as blocks, opened when first read."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
        return
    if isinstance(source, Path):
        with open(source, "rb") as stream:
            yield from _read(stream)
        return
    yield from _read(source)


def _read(stream: Any) -> Iterator[bytes]:
    while block := stream.read(CHUNK):
        yield bytes(block)


def sized(source: Any, spooled: ExitStack) -> tuple[int, Opener]:
    """A source's size and an opener of its bytes: a local file as it is, a stream of unknown
    length copied to a temp file on disk first (a tar header carries the size)."""
    if isinstance(source, Path):
        return source.stat().st_size, lambda: open(source, "rb")
    if isinstance(source, (bytes, bytearray, memoryview)):
        import io

        data = bytes(source)
        return len(data), lambda: io.BytesIO(data)
    fileno = getattr(source, "fileno", None)
    if callable(fileno) and getattr(source, "seekable", lambda: False)():
        try:
            info = os.fstat(fileno())
        except (OSError, ValueError):
            info = None
        if info is not None and stat.S_ISREG(info.st_mode):
            return int(info.st_size - source.tell()), lambda: _Unclosed(source)
    copy = spooled.enter_context(tempfile.TemporaryFile(prefix="herd-put-"))
    shutil.copyfileobj(source, copy, CHUNK)
    size = copy.tell()
    copy.seek(0)
    return size, lambda: _Unclosed(copy)


class _Unclosed:
    """A stream someone else closes, usable in a `with`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def read(self, size: int = -1) -> bytes:
        return bytes(self._inner.read(size))

    def __enter__(self) -> _Unclosed:
        return self

    def __exit__(self, *_: object) -> None:
        pass


def tar_stream(members: Sequence[Member]) -> Iterator[bytes]:
    """A tar (pax) of regular files named by herd paths, as blocks: headers, bytes, padding, the
    end-of-archive marker last (the server refuses a tar without it: the upload was cut)."""
    for name, size, opener in members:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.type = size, 0o644, tarfile.REGTYPE
        yield info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")
        sent = 0
        with opener() as stream:
            while block := stream.read(min(CHUNK, size - sent)) if sent < size else b"":
                sent += len(block)
                yield block
        if sent != size:
            raise InvalidArgument(f"source of '{printable(name)}' changed while it was read: "
                                  f"{sent} bytes instead of {size}")
        yield bytes(-size % tarfile.BLOCKSIZE)
    yield bytes(tarfile.BLOCKSIZE * 2)


def damaged(repo: str, commit: str, path: str, address: str, why: str) -> DataCorrupted:
    error = DataCorrupted(f"file '{printable(path)}' in repo '{repo}' at commit '{commit}' arrived damaged "
                          f"from the herd server at {address}: {why}")
    error.repo, error.commit, error.path = repo, commit, path  # type: ignore[attr-defined]
    return error


def receive(response: Answer, out: SupportsWrite[bytes], repo: str, path: str, address: str,
            progress: Callable[[int], object] | None = None) -> None:
    """A download's body into `out`, checked (`checked_blocks`): DataCorrupted on a short body or
    a mismatch, after the blocks before it were written (the caller drops a local file)."""
    for block in checked_blocks(response, repo, path, address):
        out.write(block)
        if progress is not None:
            progress(len(block))


def checked_blocks(response: Answer, repo: str, path: str, address: str) -> Iterator[bytes]:
    """A download's body as blocks, checked: its length against Content-Length, its sha256
    against the server's header when given; DataCorrupted after the last block when not."""
    expected = int(response.headers.get("content-length", "-1"))
    sha = response.headers.get(SHA256_HEADER)
    commit = response.headers.get(COMMIT_HEADER, "?")
    digest = hashlib.sha256()
    got = 0
    blocks = response.iter_raw(CHUNK)
    while True:
        try:
            block = next(blocks)
        except StopIteration:
            break
        except Exception as exc:  # the connection cut: what the server does when damage shows mid-file
            why = " ".join(str(exc).split()) or type(exc).__name__
            raise damaged(repo, commit, path, address,
                          f"the answer broke off after {got} of {expected} bytes ({why})") from None
        got += len(block)
        digest.update(block)
        yield block
    if expected >= 0 and got != expected:
        raise damaged(repo, commit, path, address, f"{got} bytes arrived of {expected}")
    if sha is not None and digest.hexdigest() != sha:
        raise damaged(repo, commit, path, address, f"its bytes hash to '{digest.hexdigest()}', not '{sha}'")


def receive_file(response: Answer, dest: Path, repo: str, path: str, address: str,
                 progress: Callable[[int], object] | None = None, dir_fd: int | None = None) -> None:
    """A download into the local file `dest` (a name in `dir_fd` when given): a temp file
    beside it, renamed into place only once all of it checked out, deleted otherwise."""
    folder = dest.parent
    if dir_fd is None:
        folder.mkdir(parents=True, exist_ok=True)
    handle, tmp = new_temp_file(folder, dest.name, dir_fd=dir_fd)
    try:
        with os.fdopen(handle, "wb") as out:
            receive(response, out, repo, path, address, progress)
        if dir_fd is None:
            os.replace(tmp, dest)
        else:
            os.replace(tmp, dest.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        os.unlink(tmp, dir_fd=dir_fd)
        raise
