"""put-file sources beyond local files and http(s): file:// URLs, s3:// prefixes with -r, and
the streams `--split` reads.

A file:// URL is its local path (a folder with -r is walked like one). An s3:// URL with -r
names every object below it, each put at PATH (or the URL's path) joined with its key below
the prefix, as pachd 1.x names them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from scheduler.cli.transfer import Upload, join_path, plan_uploads
from storage.errors import InvalidArgument
from storage.paths import normalize_path, printable
from storage.settings import StorageSettings


def local_path(source: str) -> str:
    """A file:// URL as the local path it names; any other source unchanged."""
    parts = urlsplit(source)
    if parts.scheme != "file":
        return source
    if parts.netloc not in ("", "localhost") or not parts.path:
        raise InvalidArgument(f"invalid file URL '{printable(source)}': use file:///absolute/path")
    return unquote(parts.path)


def plan(
    sources: Sequence[str],
    path: str | None,
    recursive: bool,
    follow_symlinks: bool,
    settings: StorageSettings,
    warn: Callable[[str], None],
) -> list[Upload]:
    """(repo path, source) for every -f, in the order given; every repo path checked first."""
    given = [local_path(source) for source in (sources or ("-",))]
    prefixes = {i for i, source in enumerate(given) if recursive and urlsplit(source).scheme == "s3"}
    rest = [source for i, source in enumerate(given) if i not in prefixes]
    planned = iter(_plan_rest(rest, path, len(given), recursive, follow_symlinks, warn))
    uploads: list[Upload] = []
    for i, source in enumerate(given):
        if i in prefixes:
            uploads += _s3_prefix(source, path, len(given), settings)
        else:
            uploads += next(planned)
    return uploads


def _plan_rest(rest: list[str], path: str | None, count: int, recursive: bool, follow: bool,
               warn: Callable[[str], None]) -> list[list[Upload]]:
    """transfer.plan_uploads for the sources that are not S3 prefixes, one list per source."""
    if not rest:
        return []
    if len(rest) == count:  # the common case: pachctl's naming, unchanged
        return _per_source(rest, plan_uploads(rest, path, recursive, follow, warn))
    if len(rest) > 1 or not path:
        return _per_source(rest, plan_uploads(rest, path, recursive, follow, warn))
    # One source besides S3 prefixes: PATH is still a prefix (several -f), not its name.
    if rest[0] == "-":
        return [[Upload(path=join_path(path, "stdin"), url="-")]]
    alone = plan_uploads(rest, None, recursive, follow, warn)
    return [[dataclasses.replace(u, path=join_path(path, u.path)) for u in alone]]


def _per_source(rest: list[str], uploads: list[Upload]) -> list[list[Upload]]:
    # Only the order matters to the caller; a source's uploads stay together.
    return [uploads] + [[] for _ in rest[1:]]


def _s3_prefix(source: str, path: str | None, count: int, settings: StorageSettings) -> list[Upload]:
    from storage.sources import s3_folder

    url_path = unquote(urlsplit(source).path)
    folder = path if (path and count == 1) else join_path(path, url_path)
    uploads = [Upload(path=join_path(folder, key), url=url)
               for key, url in s3_folder(source, settings.s3_endpoint_url)]
    for upload in uploads:
        normalize_path(upload.path)  # InvalidPath before any object is read
    return uploads


def as_streams(pairs: Sequence[tuple[str, Any]], uploads: Sequence[Upload],
               opened: ExitStack) -> list[tuple[str, BinaryIO, str]]:
    """(path, stream, source name) for `--split`: local files opened here (closed by `opened`)."""
    streams: list[tuple[str, BinaryIO, str]] = []
    for (path, source), upload in zip(pairs, uploads):
        name = "stdin" if upload.url == "-" else (upload.url or str(upload.local))
        if isinstance(source, Path):
            source = opened.enter_context(open(source, "rb"))
        streams.append((path, source, name))
    return streams
