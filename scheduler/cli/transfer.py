"""Client-side halves of put-file and get-file: naming sources as pachctl does, local folders.

pachctl walks local folders and names files on the client; herd does the same here, so the
porcelain only ever sees (path, source) pairs. Progress is threaded through a `Meter`.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from scheduler.cli.progress import Meter
from storage.errors import InvalidArgument, NotFound

URL_SCHEMES = ("http", "https", "s3")


@dataclass(frozen=True)
class Upload:
    """One file to put: its path in the repo and where its bytes come from."""

    path: str
    local: Path | None = None  # a local file, opened only when uploaded
    url: str | None = None  # '-' or a URL, opened before the upload starts
    size: int | None = None  # known for local files, for the progress bar


def join_path(prefix: str | None, name: str) -> str:
    """pachctl's joinPaths without cleaning, so a '..' still reaches the porcelain's check."""
    if not prefix:
        return name
    return prefix.rstrip("/") + "/" + name.lstrip("/")


def is_url(source: str) -> bool:
    return urlsplit(source).scheme in URL_SCHEMES


def plan_uploads(sources: Sequence[str], path: str | None, recursive: bool) -> list[Upload]:
    """(repo path, source) for every `-f`, named as pachctl names them."""
    if not sources:
        sources = ("-",)
    uploads: list[Upload] = []
    for source in sources:
        # One source with PATH: PATH names the file; several: PATH is a prefix (pachctl).
        base = path if (path and len(sources) == 1) else None
        if source == "-":
            if not path:
                raise InvalidArgument("put-file from stdin ('-f -') needs a PATH to write to")
            uploads.append(Upload(path=base or join_path(path, "stdin"), url="-"))
        elif is_url(source):
            name = unquote(urlsplit(source).path)
            uploads.append(Upload(path=base or join_path(path, name), url=source))
        elif recursive and os.path.isdir(source):
            uploads += _folder(source, base or join_path(path, source))
        else:
            uploads.append(_local_file(source, base or join_path(path, source)))
    return uploads


def _local_file(source: str, target: str) -> Upload:
    local = Path(source)
    if local.is_dir():
        raise InvalidArgument(f"source '{source}' is a folder; use put-file -r to put a folder")
    if not local.is_file():
        raise NotFound(f"source file '{source}' not found")
    return Upload(path=target, local=local, size=local.stat().st_size)


def _folder(source: str, target: str) -> list[Upload]:
    """Every regular file below `source`, sorted, at `target` + its relative path."""
    found = []
    for folder, dirs, files in os.walk(source):
        dirs.sort()
        for name in sorted(files):
            local = Path(folder, name)
            if local.is_file():  # skip sockets, FIFOs and dangling links
                rel = local.relative_to(source).as_posix()
                found.append(Upload(path=join_path(target, rel), local=local,
                                    size=local.stat().st_size))
    if not found:
        raise InvalidArgument(f"source folder '{source}' has no files to put")
    return found


def typing_on_stdin(uploads: Sequence[Upload]) -> bool:
    """Whether a source is stdin and stdin is a terminal (a person typing)."""
    return any(u.url == "-" for u in uploads) and sys.stdin.isatty()


def total_size(uploads: Sequence[Upload]) -> int | None:
    """Bytes to send, or None when a stream of unknown length is among them."""
    sizes = [u.size for u in uploads]
    return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)


def open_sources(
    uploads: Sequence[Upload], opener: Callable[[str], BinaryIO], meter: Meter, metered: bool
) -> list[tuple[str, Any]]:
    """(path, source) pairs for the porcelain; URLs are opened now so a bad one fails first."""
    pairs: list[tuple[str, Any]] = []
    for upload in uploads:
        if upload.url is not None:
            pairs.append((upload.path, meter.wrap(opener(upload.url))))
        elif metered:
            pairs.append((upload.path, meter.wrap(LazyFile(upload.local))))  # type: ignore[arg-type]
        else:
            pairs.append((upload.path, upload.local))  # a Path: the porcelain's fast path
    return pairs


class LazyFile(io.RawIOBase):
    """A local file opened at its first read and closed at EOF: a folder never holds N fds."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path, self._handle, self._done = path, None, False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        if self._handle is None:
            self._handle = open(self._path, "rb")
        n = self._handle.readinto(buffer)
        if not n:
            self._handle.close()
            self._done = True
        return n or 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        super().close()


@contextmanager
def atomic_output(dest: Path) -> Iterator[BinaryIO]:
    """A temp file beside `dest`, renamed over it only when the body completes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise


class MeteredWriter:
    """Counts bytes written into a Meter (get-file -o with a progress bar)."""

    def __init__(self, inner: BinaryIO, meter: Meter) -> None:
        self._inner, self._meter = inner, meter

    def write(self, data: bytes) -> int:
        n = self._inner.write(data)
        self._meter.advance(len(data))
        return n

    def flush(self) -> None:
        self._inner.flush()
