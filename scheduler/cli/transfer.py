"""Client-side halves of put-file and get-file: naming sources as pachctl does, local folders.

pachctl walks local folders and names files on the client; herd does the same here, so the
porcelain only ever sees (path, source) pairs, each checked before any upload starts.
Progress is threaded through a `Meter`.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from scheduler.cli.progress import Meter
from storage.collector import collector_paused
from storage.errors import InvalidArgument, InvalidPath, NotFound
from storage.paths import MAX_PATH_BYTES, bad_character, normalize_path, printable
from storage.streams import LazyStream

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


@dataclass(frozen=True)
class Skipped:
    """A local entry put-file -r leaves out, and why (printed as a warning, one line each)."""

    local: str
    reason: str


SYMLINK_SKIPPED = "a symbolic link (--follow-symlinks follows links)"


def plan_uploads(
    sources: Sequence[str],
    path: str | None,
    recursive: bool,
    follow_symlinks: bool = False,
    warn: Callable[[str], None] | None = None,
) -> list[Upload]:
    """(repo path, source) for every `-f`, named as pachctl names them.

    Every repo path is checked here, before a byte is read or stored. In a folder (-r), symbolic
    links are skipped unless `follow_symlinks` (like `cp -r` against `cp -rL`; a link that
    loops is refused), and FIFOs, sockets and devices always are: each skip is reported through
    `warn` (default: stderr), so nothing is left out without a word. A source named with -f
    itself is taken as given, link or not: the user chose it.
    """
    if not sources:
        sources = ("-",)
    uploads: list[Upload] = []
    skipped: list[Skipped] = []
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
            found = _folder(source, base or join_path(path, source), follow_symlinks, skipped)
            if not found:
                raise InvalidArgument(
                    f"source folder '{printable(source)}' has no files to put"
                    + (f" ({len(skipped)} skipped: {_summary(skipped)})" if skipped else "")
                )
            uploads += found
        else:
            uploads.append(_local_file(source, base or join_path(path, source)))
    for upload in uploads:
        normalize_path(upload.path)  # InvalidPath now, not after some files went up
    for item in skipped:
        (warn or _warn)(f"warning: skipped '{printable(item.local)}': {item.reason}")
    return uploads


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _summary(skipped: Sequence[Skipped]) -> str:
    return ", ".join(f"'{printable(item.local)}' ({item.reason})" for item in skipped[:3]) + (
        ", ..." if len(skipped) > 3 else ""
    )


def _local_file(source: str, target: str) -> Upload:
    local = Path(source)
    if local.is_dir():
        raise InvalidArgument(f"source '{printable(source)}' is a folder; use put-file -r to put a folder")
    try:
        mode = local.stat().st_mode
    except FileNotFoundError:
        raise NotFound(f"source file '{printable(source)}' not found") from None
    if stat.S_ISFIFO(mode):
        return Upload(path=target, url=source)  # a named pipe or <(cmd): streamed like stdin
    if not stat.S_ISREG(mode):
        raise InvalidArgument(f"source '{printable(source)}' is {_kind(mode)}, not a file")
    return Upload(path=target, local=local, size=local.stat().st_size)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _folder(source: str, target: str, follow: bool, skipped: list[Skipped]) -> list[Upload]:
    """Every regular file below `source`, sorted, at `target` + its relative path.

    A loop, not recursion: a hostile tree thousands of folders deep must be an error, not a
    RecursionError; one deeper than a repo path can be is refused as soon as it is seen.
    """
    with collector_paused():  # an Upload and a Path per file, no cycle: see storage/collector.py
        return _walk(source, target, follow, skipped)


def _walk(source: str, target: str, follow: bool, skipped: list[Skipped]) -> list[Upload]:
    found: list[Upload] = []
    top = os.stat(source)
    # (folder, its path below source with a trailing '/', the folders above it by inode)
    pending = [(Path(source), "", frozenset({(top.st_dev, top.st_ino)}))]
    while pending:
        folder, rel, ancestors = pending.pop()
        if len(rel.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
            raise InvalidPath(
                f"local folder '{printable(str(folder))[:200]}...' is deeper than a repo path can be "
                f"({MAX_PATH_BYTES} bytes)"
            )
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        below = []
        for entry in entries:
            local = folder / entry.name  # what Path(entry.path) is, without parsing the folder again
            is_link = entry.is_symlink()
            if is_link and not follow:
                skipped.append(Skipped(str(local), SYMLINK_SKIPPED))
                continue
            try:
                info = os.stat(local) if is_link else entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                skipped.append(Skipped(str(local), "a dangling symbolic link"))
                continue
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise InvalidArgument(f"symbolic link '{printable(str(local))}' loops") from None
                raise
            if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
                skipped.append(Skipped(str(local), _kind(info.st_mode)))
                continue
            problem = bad_character(entry.name)
            if problem is not None:
                raise InvalidPath(
                    f"local file '{printable(str(local))}' cannot be put: its name {problem}"
                )
            if stat.S_ISDIR(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if key in ancestors:  # only a followed link can lead back up
                    raise InvalidArgument(
                        f"symbolic link '{printable(str(local))}' loops: it leads back to a folder above it"
                    )
                below.append((local, f"{rel}{entry.name}/", ancestors | {key}))
            else:
                found.append(Upload(path=join_path(target, rel + entry.name), local=local,
                                    size=info.st_size))
        pending += reversed(below)  # depth first, in name order
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
            # opened at its first read and closed at its end: a folder never holds N fds
            lazy = LazyStream(functools.partial(open, upload.local, "rb"))  # type: ignore[arg-type]
            pairs.append((upload.path, meter.wrap(lazy)))  # type: ignore[arg-type]
        else:
            pairs.append((upload.path, upload.local))  # a Path: the porcelain's fast path
    return pairs


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
