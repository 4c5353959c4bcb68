"""Turn configuration into instances: the storage URL into an ObjectStore, a source into a stream."""

from __future__ import annotations

import io
import os
import sys
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from storage.errors import DataCorrupted, FormatTooNew, InvalidArgument, NotFound, StorageUnavailable, Unavailable
from storage.layout import FORMAT_KEY, STORAGE_FORMAT
from storage.objects import MemoryObjectStore, ObjectStore
from storage.settings import StorageSettings
from storage.streams import PassThrough

# One store per memory:// URL in a process, so two opens in the same process see the same data.
_memory_stores: dict[str, MemoryObjectStore] = {}
_memory_lock = threading.Lock()
_HTTP_TIMEOUT = (10.0, 60.0)


def open_object_store(settings: StorageSettings, *, check: bool = True) -> ObjectStore:
    """The object store named by `settings.storage` (file://, s3:// or memory://), its format
    checked (`check_format`): FormatTooNew when a newer herd wrote it. `check=False` only for
    commands that report on the store without using it (`herd status`, `herd version`).

    `settings` are the entry point's, loaded once (the CLI's, `herd worker`'s): never read here."""
    store = _open_store(settings)
    if check:
        check_format(store)
    return store


def read_format(objects: ObjectStore) -> int | None:
    """The store's format marker, read only (None: no marker yet); StorageUnavailable when the
    store does not answer, DataCorrupted when the marker is no number."""
    try:
        raw = objects.get(FORMAT_KEY)
    except NotFound:
        return None
    return _parse_format(objects, raw)


def _parse_format(objects: ObjectStore, raw: bytes) -> int:
    text = raw.decode("utf-8", errors="replace").strip()
    if not (text.isascii() and text.isdigit()):
        where = getattr(objects, "url", "the store")
        raise DataCorrupted(f"storage format marker '{FORMAT_KEY}' in {where} is not a version number: {text[:40]!r}")
    return int(text)


def check_format(objects: ObjectStore) -> int:
    """The store's format version; a store without a marker gets this herd's (create-only).

    FormatTooNew when the marker names a newer format than STORAGE_FORMAT: an older herd
    refuses a store it might misread. A store that does not answer is not checked here (the
    command's first real read reports the outage; services check again when they next open)."""
    try:
        return _read_or_mark_format(objects)
    except Unavailable:
        return STORAGE_FORMAT


def _read_or_mark_format(objects: ObjectStore) -> int:
    try:
        raw = objects.get(FORMAT_KEY)
    except NotFound:
        if objects.put_if_absent(FORMAT_KEY, f"{STORAGE_FORMAT}\n".encode()):
            return STORAGE_FORMAT
        raw = objects.get(FORMAT_KEY)  # another process marked it first
    found = _parse_format(objects, raw)
    if found > STORAGE_FORMAT:
        where = getattr(objects, "url", "the store")
        raise FormatTooNew(
            f"storage {where} has format {found}, newer than this herd reads (format {STORAGE_FORMAT}): upgrade herd"
        )
    return found


# Per store, the format this process already raised it to: one marker read per store, not per write.
_raised: weakref.WeakKeyDictionary[ObjectStore, int] = weakref.WeakKeyDictionary()


def ensure_format(objects: ObjectStore, version: int) -> None:
    """raise_format, once per store and version in this process."""
    try:
        if _raised.get(objects, 0) >= version:
            return
    except TypeError:  # a store that cannot be weakly referenced: checked every time
        raise_format(objects, version)
        return
    raise_format(objects, version)
    _raised[objects] = max(version, _raised.get(objects, 0))


def raise_format(objects: ObjectStore, version: int) -> None:
    """Raise the store's format marker to at least `version` (compare-and-set), before this
    process writes the first object an older herd would misread; a marker already there or
    newer is left alone (FormatTooNew when newer than this herd reads)."""
    for _ in range(100):
        found = objects.read_versioned(FORMAT_KEY)
        if found is None:
            if objects.put_if_absent(FORMAT_KEY, f"{STORAGE_FORMAT}\n".encode()):
                return
            continue
        raw, token = found
        current = _parse_format(objects, raw)
        if current > STORAGE_FORMAT:
            _read_or_mark_format(objects)  # raises FormatTooNew naming both formats
        if current >= version:
            return
        if objects.compare_and_set(FORMAT_KEY, token, f"{version}\n".encode()):
            return
    raise StorageUnavailable(f"storage format marker '{FORMAT_KEY}' kept changing while it was raised to {version}")


def _open_store(settings: StorageSettings) -> ObjectStore:
    url = settings.storage
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidArgument(f"invalid storage URL '{url}': use file:///absolute/path")
        if not parts.path:
            raise InvalidArgument(f"invalid storage URL '{url}': no folder after file://")
        from storage.local import LocalObjectStore

        return LocalObjectStore(Path(unquote(parts.path)).expanduser())
    if parts.scheme == "s3":
        if not parts.netloc:
            raise InvalidArgument(f"invalid storage URL '{url}': expected s3://bucket/prefix")
        # Imported here: boto3 costs ~0.3 s at start-up and local users never need it.
        from storage.s3 import S3ObjectStore

        return S3ObjectStore(parts.netloc, parts.path.strip("/"), settings.s3_endpoint_url)
    if parts.scheme == "memory":
        with _memory_lock:
            return _memory_stores.setdefault(url, MemoryObjectStore(url))
    raise InvalidArgument(
        f"unsupported storage URL '{url}': expected file:///path, s3://bucket/prefix or memory://"
    )


def open_source(url_or_path: str, settings: StorageSettings | None = None) -> BinaryIO:
    """A binary stream for `put-file -f`: a local path, `-` (stdin), http(s):// or s3://."""
    if url_or_path == "-":
        return sys.stdin.buffer
    scheme = urlsplit(url_or_path).scheme
    if scheme in ("http", "https"):
        return _open_http(url_or_path)
    if scheme == "s3":
        from storage.s3 import open_s3_url

        return open_s3_url(url_or_path, settings.s3_endpoint_url if settings is not None else None)
    if scheme == "file":
        return _open_local(unquote(urlsplit(url_or_path).path))
    return _open_local(url_or_path)


def _open_local(path: str) -> BinaryIO:
    if os.path.isdir(path):
        raise InvalidArgument(f"source '{path}' is a folder; give a file (or use put-file -r)")
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise NotFound(f"source file '{path}' not found") from None
    except PermissionError:
        raise InvalidArgument(f"source file '{path}' is not readable (permission denied)") from None


def _open_http(url: str) -> BinaryIO:
    """Stream an HTTP(S) body; requests is imported here because only this path needs it."""
    import requests

    try:
        response = requests.get(url, stream=True, timeout=_HTTP_TIMEOUT)
    except requests.RequestException as exc:
        raise StorageUnavailable(f"cannot fetch '{url}': {exc}") from exc
    if response.status_code == 404:
        response.close()
        raise NotFound(f"source URL '{url}' not found (HTTP 404)")
    if response.status_code >= 400:
        response.close()
        raise StorageUnavailable(f"cannot fetch '{url}': HTTP {response.status_code} {response.reason}")
    response.raw.decode_content = True  # gzip transfer-encoding is not part of the file
    raw = PassThrough(response.raw, errors=lambda: _read_errors(url), on_close=response.close)
    return io.BufferedReader(raw, 1024 * 1024)


@contextmanager
def _read_errors(url: str) -> Iterator[None]:
    """Mid-transfer failures (lost connection, short body) as herd errors naming the URL."""
    try:
        yield
    except Exception as exc:  # urllib3/requests errors
        raise StorageUnavailable(f"reading '{url}' failed: {exc}") from exc
