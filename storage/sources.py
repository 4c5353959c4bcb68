"""Naming the objects below a source URL (`put-file -r -f s3://bucket/prefix`).

Pachyderm 1.x walks the object store under the URL's key and puts each object at the target
path joined with the key minus the prefix. herd treats the prefix as a folder (`data` lists
`data/...`, not `database/...`) and skips keys ending in '/' (folder markers), as pachd did.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from storage.errors import InvalidArgument, NotFound


def s3_folder(url: str, endpoint_url: str | None) -> list[tuple[str, str]]:
    """(key below the prefix, object URL) for every object under `s3://bucket/prefix`, sorted;
    NotFound naming the URL when there is none."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise InvalidArgument(f"invalid S3 URL '{url}': expected s3://bucket/prefix")
    from storage.s3 import S3ObjectStore

    folder = parts.path.strip("/")  # as open_s3_url reads a key: not unquoted
    prefix = f"{folder}/" if folder else ""
    store = S3ObjectStore(parts.netloc, "", endpoint_url, create_bucket=False, check_conditional_writes=False)
    found = [(key[len(prefix):], f"s3://{parts.netloc}/{key}") for key in store.list(prefix)
             if not key.endswith("/")]
    if not found:
        raise NotFound(f"no S3 objects under '{url}' at {store.endpoint}")
    return found
