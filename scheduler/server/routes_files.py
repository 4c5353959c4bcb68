"""Routes of files: put (one file, many in one tar, --split), get (streamed), list, glob, inspect,
walk, diff, delete and copy. One per method of scheduler.pfs_api.HerdPfs the CLI calls.

Uploads never sit in memory: the request body is spooled to a temp file on disk as it arrives,
then put with the same Pfs call the CLI makes (hashing on the way, create-only blobs). Many files
come as one tar stream whose member names are herd paths only (never local paths: each member is
spooled to a temp file named by its position), checked with storage's path rules; a tar that is
cut short, or a client that goes away mid-upload, stores nothing. Downloads stream from the
verified reader: damage found before the first byte is the CLI's JSON error, damage found later
cuts the connection (the client sees a short body), never a silently truncated 200.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO, Literal, TypeVar, cast

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from scheduler.auth.rules import READER, WRITER, Principal
from scheduler.server.app import Api, api
from scheduler.server.authn import principal
from storage.blobs import CHUNK
from storage.errors import HerdError, InvalidArgument, InvalidPath
from storage.model import Commit, FileDiff, FileInfo
from storage.paths import normalize_path, printable, validate_name

if TYPE_CHECKING:
    from scheduler.pfs_api import HerdPfs

router = APIRouter(tags=["files"])
log = logging.getLogger("herd.server")
ApiDep = Annotated[Api, Depends(api)]
Who = Annotated[Principal, Depends(principal)]
T = TypeVar("T")

# What a download announces besides Content-Length: the file's herd hash (FileInfo.hash), the
# commit it was read from, and the sha256 of its bytes when that is known without reading them
# (a one-chunk file: its blob id), which the client checks what it received against.
HASH_HEADER, COMMIT_HEADER, SHA256_HEADER = "X-Herd-Hash", "X-Herd-Commit", "X-Herd-Sha256"
TAR_END = tarfile.BLOCKSIZE * 2  # the end-of-archive marker: two zero blocks


TAR_BODY = "a tar stream of regular files named by their herd paths ('/a/b.txt'), end-of-archive marker included"


def _body(media_type: str, what: str) -> dict[str, object]:
    """The OpenAPI entry of a raw request body (read as a stream, so FastAPI cannot infer it)."""
    return {"requestBody": {"required": True, "description": what,
                            "content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}}


class CopyFile(BaseModel):
    src_repo: str
    src_ref: str
    src_path: str
    dst_ref: str
    dst_path: str
    overwrite: bool = False


def pfs(a: Api) -> HerdPfs:
    return cast("HerdPfs", a.pfs)


# ---- uploads ---------------------------------------------------------------------------------


@router.put("/repos/{repo}/file", openapi_extra=_body("application/octet-stream", "the file's bytes"))
async def put_file(request: Request, repo: str, ref: str, path: str, append: bool = False) -> Commit:
    """One file; the request body is its bytes (streamed; any length, chunked or not)."""
    a = api(request)
    normalize_path(path)  # InvalidPath before a byte is read
    await _repo_first(a, repo)
    with tempfile.TemporaryDirectory(prefix="herd-upload-") as folder:
        body = Path(folder) / "body"
        await _spool(request, body, f"'{printable(path)}'")
        return await _settled(a, lambda: pfs(a).put_file(repo, ref, path, body, append=append))


@router.post("/repos/{repo}/files", openapi_extra=_body("application/x-tar", TAR_BODY))
async def put_files(request: Request, repo: str, ref: str, append: bool = False) -> Commit:
    """put-file -r: many files in ONE commit; the body is a tar stream of regular files whose
    member names are the files' herd paths ('/a/b.txt')."""
    a = api(request)
    await _repo_first(a, repo)
    with tempfile.TemporaryDirectory(prefix="herd-upload-") as folder:
        body = Path(folder) / "body"
        await _spool(request, body, "the tar stream")

        def put() -> Commit:
            members = tar_members(body, Path(folder))
            return pfs(a).put_files(repo, ref, members, append=append)

        return await _settled(a, put)


@router.post("/repos/{repo}/files/split", openapi_extra=_body("application/x-tar", TAR_BODY))
async def put_split(
    request: Request, repo: str, ref: str, mode: Literal["line", "json"],
    source: Annotated[list[str], Query()],
    target_file_datums: Annotated[int, Query(ge=0)] = 0, target_file_bytes: Annotated[int, Query(ge=0)] = 0,
    append: bool = False,
) -> Commit:
    """put-file --split: the body is a tar stream as for put_files; `source` names each member's
    origin (for messages), in order."""
    a = api(request)
    await _repo_first(a, repo)
    with tempfile.TemporaryDirectory(prefix="herd-upload-") as folder:
        body = Path(folder) / "body"
        await _spool(request, body, "the tar stream")

        def put() -> Commit:
            members = tar_members(body, Path(folder))
            if len(members) != len(source):
                raise InvalidArgument(f"'source': {len(source)} given for {len(members)} tar members")
            with ExitStack() as opened:
                items = [(name, cast(BinaryIO, opened.enter_context(open(spooled, "rb"))), origin)
                         for (name, spooled), origin in zip(members, source)]
                return pfs(a).put_split(repo, ref, items, mode, target_file_datums, target_file_bytes,
                                        append=append)

        return await _settled(a, put)


async def _repo_first(a: Api, repo: str) -> None:
    """RepoNotFound (or InvalidName) before the body is read, not after it was spooled."""
    validate_name(repo, "repo")
    await run_in_threadpool(pfs(a).commits.require_repo, repo)


async def _spool(request: Request, dest: Path, what: str) -> int:
    """The request body into `dest` on disk as it arrives (blocks of up to CHUNK written on a
    thread); InvalidArgument when the client goes away before its end."""
    size = 0
    pending = bytearray()
    with open(dest, "wb") as out:
        try:
            async for piece in request.stream():
                pending += piece
                size += len(piece)
                if len(pending) >= CHUNK:
                    await run_in_threadpool(out.write, bytes(pending))
                    pending.clear()
        except ClientDisconnect:
            raise InvalidArgument(f"the upload of {what} was cut short after {size} bytes: nothing stored") from None
        await run_in_threadpool(out.write, bytes(pending))
    return size


async def _settled(a: Api, change: Callable[[], T]) -> T:
    """A change on the thread pool, then the jobs it caused (as the @settles CLI verb does)."""

    def run() -> T:
        result = change()
        a.settle()
        return result

    return await run_in_threadpool(run)


def tar_members(spool: Path, folder: Path) -> list[tuple[str, Path]]:
    """(herd path, temp file) of every member of the tar in `spool`, in order, each copied to a
    file of its own named by its position. Only regular files with normalised herd paths; the
    end-of-archive marker must be there, so a tar cut at a member boundary is refused too."""
    members: list[tuple[str, Path]] = []
    with open(spool, "rb") as raw:
        try:
            with tarfile.open(fileobj=raw, mode="r|") as tar:
                for index, member in enumerate(tar):
                    name = member_path(member)
                    reader = tar.extractfile(member)
                    assert reader is not None  # a regular file
                    target = folder / f"member-{index}"
                    with open(target, "wb") as out:
                        shutil.copyfileobj(reader, out, CHUNK)
                    if out_size(target) != member.size:
                        raise tarfile.ReadError(f"member '{printable(name)}' is cut short")
                    members.append((name, target))
                end = tar.offset
        except tarfile.TarError as exc:
            raise InvalidArgument(f"the upload is not a complete tar stream: {exc}") from None
        raw.seek(end)
        if raw.read(TAR_END) != bytes(TAR_END):
            raise InvalidArgument("the upload is not a complete tar stream: its end-of-archive marker is missing")
    return members


def out_size(path: Path) -> int:
    return os.stat(path).st_size


def member_path(member: tarfile.TarInfo) -> str:
    """A member's name as a herd path: it must be a regular file named by a normalised path."""
    name = member.name
    if not member.isreg():
        kind = "a directory" if member.isdir() else "a link" if member.issym() or member.islnk() else "a special file"
        raise InvalidPath(f"tar member '{printable(name)}' is {kind}: only regular files can be put")
    normal = normalize_path(name)  # InvalidPath naming it: '..', NUL, '//', ...
    if normal != name:
        raise InvalidPath(f"tar member '{printable(name)}' is not a normalised herd path (expected '{normal}')")
    return name


# ---- downloads -------------------------------------------------------------------------------


@router.get("/repos/{repo}/file", response_class=StreamingResponse, responses={200: {
    "content": {"application/octet-stream": {}},
    "description": f"the file's bytes; Content-Length, {HASH_HEADER}, {COMMIT_HEADER} and, for a one-chunk "
                   f"file, {SHA256_HEADER} (the sha256 of the bytes)"}})
def get_file(a: ApiDep, repo: str, ref: str, path: str) -> StreamingResponse:
    """A file's bytes, streamed and verified. Damage found before the first byte is the JSON
    error the CLI prints; damage found later cuts the connection short."""
    commit, entry = pfs(a).file_entry(repo, ref, path)
    reader = pfs(a).open_file(repo, commit.id, path)
    try:
        first = reader.read(CHUNK)  # a damaged small file fails here, as a proper error
    except BaseException:
        reader.close()
        raise
    headers = {"Content-Length": str(entry.size), HASH_HEADER: entry.hash, COMMIT_HEADER: commit.id}
    if len(entry.chunks) == 1:
        headers[SHA256_HEADER] = entry.chunks[0]
    return StreamingResponse(_blocks(reader, first, repo, path), media_type="application/octet-stream", headers=headers)


def _blocks(reader: BinaryIO, first: bytes, repo: str, path: str) -> Iterator[bytes]:
    """The file's blocks; damage found now, with the status line sent, can only be told by
    cutting the connection short (raising does: the client sees fewer bytes than announced)."""
    with reader:
        block = first
        while block:
            yield block
            try:
                block = reader.read(CHUNK)
            except HerdError as exc:
                log.error("cutting the download of '%s' in repo '%s' short: %s", printable(path), repo, exc.message)
                raise


@router.get("/repos/{repo}/files")
def list_file(a: ApiDep, repo: str, ref: str, path: str = "/") -> list[FileInfo]:
    return pfs(a).list_file(repo, ref, path)


@router.get("/repos/{repo}/file/info")
def inspect_file(a: ApiDep, repo: str, ref: str, path: str) -> FileInfo:
    return pfs(a).inspect_file(repo, ref, path)


@router.get("/repos/{repo}/file/walk")
def walk_file(a: ApiDep, repo: str, ref: str, path: str) -> list[FileInfo]:
    """Every file at or below `path`, of one commit (get-file -r's listing)."""
    return pfs(a).walk_file(repo, ref, path)


@router.get("/repos/{repo}/glob")
def glob_file(a: ApiDep, repo: str, ref: str, pattern: str) -> list[FileInfo]:
    return pfs(a).glob_file(repo, ref, pattern)


@router.get("/repos/{repo}/diff")
def diff_file(a: ApiDep, repo: str, ref: str, old_ref: str | None = None, path: str = "/") -> FileDiff:
    return pfs(a).diff_file(repo, ref, old_ref, path)


@router.get("/repos/{repo}/diff-paths")
def diff_paths(
    a: ApiDep, who: Who, repo: str, ref: str, path: str, old_repo: str, old_ref: str, old_path: str,
) -> FileDiff:
    """diff-file against another repo or path: reading both repos takes the reader role on both."""
    a.require(who, repo, READER)
    a.require(who, old_repo, READER)
    return pfs(a).diff_paths(repo, ref, path, old_repo, old_ref, old_path)


# ---- changes without bytes -------------------------------------------------------------------


@router.delete("/repos/{repo}/file")
def delete_file(a: ApiDep, repo: str, ref: str, path: str) -> Commit:
    commit = pfs(a).delete_file(repo, ref, path)
    a.settle()
    return commit


@router.post("/repos/{repo}/copy-file")
def copy_file(a: ApiDep, who: Who, repo: str, body: CopyFile) -> Commit:
    """copy-file into `repo` (the destination) from any repo; entries only, no bytes move.
    Reader of the source and writer of the destination."""
    a.require(who, body.src_repo, READER)
    a.require(who, repo, WRITER)
    commit = pfs(a).copy_file(body.src_repo, body.src_ref, body.src_path, repo, body.dst_ref, body.dst_path,
                              overwrite=body.overwrite)
    a.settle()
    return commit

