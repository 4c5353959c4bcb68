"""Egress: copy a finished commit's files to an object store outside herd (Pachyderm's `egress.URL`).

The target is a plain folder or bucket the user reads with their own tools, not a herd store:
each file lands at `<prefix>/<path>` with its bytes and nothing else (no format marker, no
bookkeeping keys). A copy overwrites by key, so running it again for the same commit leaves the
same objects: a crash mid-copy is repaired by copying again. Every byte read from herd is checked
against its hash on the way (Pfs.open_file), so damaged data fails the copy instead of leaving.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from storage import failpoints
from storage.errors import EgressFailed, HerdError, InvalidArgument, Unavailable
from storage.objects import ObjectStore
from storage.repos import Pfs

SCHEMES = ("s3", "file")


def check_egress_url(url: str) -> str:
    """`url` if it names a place egress can write (s3://bucket[/prefix], file:///path); else
    InvalidArgument naming it (pure: a spec is checked before anything runs)."""
    parts = urlsplit(url)
    if parts.scheme == "s3" and parts.netloc:
        return url
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path.startswith("/"):
        return url
    raise InvalidArgument(f"invalid egress URL '{url}': expected s3://bucket/prefix or file:///absolute/path")


def open_target(url: str, s3_endpoint_url: str | None) -> ObjectStore:
    """The object store at the egress URL; an S3 bucket must exist (egress never creates one)."""
    check_egress_url(url)
    parts = urlsplit(url)
    if parts.scheme == "file":
        from storage.local import LocalObjectStore

        try:
            return LocalObjectStore(Path(unquote(parts.path)))
        except OSError as exc:
            raise EgressFailed(f"egress to '{url}' failed: cannot use the folder: {exc.strerror or exc}") from None
    # Imported here: boto3 costs ~0.3 s at start-up and only S3 users need it.
    from storage.s3 import S3ObjectStore

    return S3ObjectStore(parts.netloc, parts.path.strip("/"), s3_endpoint_url, create_bucket=False,
                         check_conditional_writes=False)


def egress_commit(pfs: Pfs, repo: str, commit_id: str, url: str, s3_endpoint_url: str | None) -> int:
    """Copy every file of `repo@commit_id` to `url`; returns the number of files copied.

    EgressFailed (naming the URL) when the target refuses (no bucket, no permission, not a
    folder); Unavailable when herd's own store or the target's endpoint does not answer (an
    outage: the caller tries again later); DataCorrupted when herd's bytes fail their hash."""
    target = open_target(url, s3_endpoint_url)
    manifest = pfs.read_manifest(pfs.inspect_commit(repo, commit_id))
    for path in sorted(manifest.files):
        with pfs.open_file(repo, commit_id, path) as reader:
            try:
                target.put_stream(path.lstrip("/"), reader)
            except Unavailable:
                raise
            except HerdError as exc:
                if exc.code == "input_corrupt":  # herd's own bytes are damaged: not the target's fault
                    raise
                raise EgressFailed(f"egress to '{url}' failed at '{path}': {exc.message}") from None
            except OSError as exc:
                raise EgressFailed(f"egress to '{url}' failed at '{path}': {exc.strerror or exc}") from None
        failpoints.hit("egress.after_file")
    return len(manifest.files)
