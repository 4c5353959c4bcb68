"""Safe extraction of the tar stream a runtime copies out of a sandbox (Docker's /pfs/out).

Extracting trusts nothing in the archive: every member is checked by
herd (relative name, no `..`, no symlinks, hard links only to files already extracted from the
same archive, no devices or FIFOs, real parent inside the destination) before tarfile's own
`filter="data"` runs as a second line (a data-filter bypass was fixed in CPython only in 2026).
"""

from __future__ import annotations

import copy
import io
import os
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TypeGuard

from storage.errors import OutputQuotaExceeded, UnsafeOutput
from storage.streams import ChunkStream

# tarfile's extraction filters arrived in Python 3.11.4 (Debian 12 ships 3.11.2). Without them
# herd's own member checks above stand alone, and attributes (owners, modes, times) from the
# archive are not applied, as the data filter would also refuse to.
_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {"set_attrs": False}
_FILTER_ERROR: type[Exception] | tuple[()] = getattr(tarfile, "FilterError", ())


def _is_file(source: IO[bytes] | Iterable[bytes]) -> TypeGuard[IO[bytes]]:
    """A file to read, not chunks to join (a file is an iterable of lines, too)."""
    return hasattr(source, "read")


def extract_tar(
    source: IO[bytes] | Iterable[bytes],
    dest: Path,
    *,
    strip_prefix: str = "",
    quota_bytes: int | None = None,
) -> int:
    """Extract a tar stream into `dest` after checking every member; returns file bytes written.

    Args:
        source: a readable binary stream, or an iterable of byte chunks (docker get_archive).
        dest: the folder to extract into (created when missing).
        strip_prefix: a first name segment every member must carry and that is dropped
            (get_archive("/pfs/out") names members `out/...`).
        quota_bytes: the largest total file size accepted, or None.
    Raises:
        UnsafeOutput: a member is absolute, has `..`, is a link or special file, names the
            member; or the stream is not a valid tar.
        OutputQuotaExceeded: the files add up to more than `quota_bytes`; checked on each
            member's header, so no byte past the quota is written (the caller removes `dest`).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    real_dest = os.path.realpath(dest)
    stream = source if _is_file(source) else ChunkStream(source)
    extracted = _Extracted(quota_bytes)
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                _extract_member(tar, member, real_dest, strip_prefix, extracted)
    except tarfile.ReadError as exc:
        raise UnsafeOutput("(archive)", f"not a valid tar stream: {exc}") from None
    return extracted.total


def read_tar_files(data: bytes, *, strip_prefix: str = "", quota_bytes: int | None = None) -> dict[str, bytes]:
    """The regular files of a tar held in memory, by checked relative name ('a/b'), after the
    member checks extract_tar makes (a hard link is the bytes of the earlier file it names);
    folders are dropped. Nothing is written anywhere.

    Raises:
        UnsafeOutput: as extract_tar, naming the member; or a member's data is cut short.
        OutputQuotaExceeded: the files add up to more than `quota_bytes`.
    """
    files: dict[str, bytes] = {}
    extracted = _Extracted(quota_bytes)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                name = member_name(member.name, strip_prefix)
                if name is None:
                    continue
                kind = _check_member(member, name, strip_prefix, extracted)
                extracted.add(name, kind, member.size if kind == "file" else 0)
                if kind == "file":
                    handle = tar.extractfile(member)
                    body = handle.read() if handle is not None else b""
                    if len(body) != member.size:
                        raise UnsafeOutput(member.name, f"is cut short ({len(body)} of {member.size} bytes)")
                    files[name] = body
                elif kind == "link":
                    files[name] = files[member_name(member.linkname, strip_prefix) or ""]
    except tarfile.TarError as exc:
        raise UnsafeOutput("(archive)", f"not a valid tar stream: {exc}") from None
    return files


class _Extracted:
    """What has been extracted so far: names by kind, and the file bytes against a quota."""

    def __init__(self, quota_bytes: int | None) -> None:
        self.kinds: dict[str, str] = {}
        self.total = 0
        self.quota = quota_bytes

    def add(self, name: str, kind: str, size: int) -> None:
        self.kinds[name] = kind
        self.total += size
        if self.quota is not None and self.total > self.quota:
            raise OutputQuotaExceeded(self.quota, f"at '/{name}'")


def _extract_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, real_dest: str, strip: str, extracted: _Extracted
) -> None:
    """Check one member in full, then let tarfile (data filter) write it."""
    name = member_name(member.name, strip)
    if name is None:
        return  # the archive's root folder itself
    kind = _check_member(member, name, strip, extracted)
    _check_parent_inside(real_dest, name, member.name)
    local = copy.copy(member)
    local.name = name
    if member.islnk():
        local.linkname = member_name(member.linkname, strip) or ""
    extracted.add(name, kind, member.size if kind == "file" else 0)
    try:
        tar.extract(local, real_dest, **_FILTER)
    except _FILTER_ERROR as exc:
        raise UnsafeOutput(member.name, f"refused by the data filter: {exc}") from None
    except (OSError, tarfile.TarError) as exc:
        raise UnsafeOutput(member.name, f"cannot be extracted: {exc}") from None


def member_name(raw: str, strip: str = "") -> str | None:
    """The checked relative name of a member ('a/b'), None for the root; UnsafeOutput if bad."""
    if raw.startswith("/") or "\x00" in raw:
        raise UnsafeOutput(raw, "archive member has an absolute name")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeOutput(raw, "archive member name contains '..'")
    if strip:
        if not parts or parts[0] != strip:
            raise UnsafeOutput(raw, f"archive member is outside '{strip}/'")
        parts = parts[1:]
    return "/".join(parts) or None


def _check_member(member: tarfile.TarInfo, name: str, strip: str, extracted: _Extracted) -> str:
    """The member's kind ('file', 'dir', 'link'), or UnsafeOutput naming it."""
    if name in extracted.kinds:
        raise UnsafeOutput(member.name, "archive has this member twice")
    for parent in _parents(name):
        if extracted.kinds.get(parent, "dir") != "dir":
            raise UnsafeOutput(member.name, f"lies below '{parent}', which is not a directory")
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        raise UnsafeOutput(member.name, f"is a symbolic link (to '{member.linkname}'); links are refused")
    if member.islnk():
        target = member_name(member.linkname, strip)
        if target is None or extracted.kinds.get(target) != "file":
            raise UnsafeOutput(member.name, f"is a hard link to '{member.linkname}', not a file of this archive")
        return "link"
    raise UnsafeOutput(member.name, "is a device, FIFO or other special file")


def _parents(name: str) -> Iterator[str]:
    parts = name.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def _check_parent_inside(real_dest: str, name: str, raw: str) -> None:
    """The member's parent, resolved on disk now, must still be inside the destination."""
    parent = os.path.realpath(os.path.join(real_dest, os.path.dirname(name)))
    if parent != real_dest and not parent.startswith(real_dest + os.sep):
        raise UnsafeOutput(raw, "archive member would be written outside the destination")
