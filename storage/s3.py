"""S3ObjectStore: the ObjectStore protocol on S3 (AWS, MinIO, SeaweedFS, moto) with boto3.

The only module that imports boto3. Every botocore exception is translated in
`_map_client_errors()`, so nothing above this file ever sees one. Uploads go through the
transfer manager (multipart, bounded memory). A read of an object bigger than one part streams
its first part while the later ones are fetched ahead by ranged GETs pinned to its ETag, as
`download_file` does, but handed out in order so the reader can hash them. CAS is
`If-None-Match: *` / `If-Match: <etag>`.

A server that ignores those headers would turn every CAS into a blind overwrite, so before its
first write to a bucket prefix the store checks, once, that the server refuses a second
create-only PUT and a PUT with a wrong If-Match (412), on a probe key it deletes afterwards. A
server that passes gets the verdict stored at `_herd/conditional-writes` (later processes read
it: one GET); one that fails is refused every write, with an error naming the endpoint.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import platform
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypedDict, Unpack, cast
from urllib.parse import urlsplit

import boto3
import botocore.session
import urllib3.exceptions
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.utils import determine_content_length, parse_timestamp
from s3transfer.manager import TransferManager

from storage import failpoints
from storage.errors import AlreadyExists, InvalidArgument, NotFound, ObjectNotFound, StorageUnavailable
from storage.layout import CONDITIONAL_WRITES_KEY, probe_key
from storage.objects import (
    COPY_CHUNK,
    IncompleteUpload,
    ObjectInfo,
    check_key,
    children_of,
    folder_prefix,
    hidden,
)
from storage.read_ahead import read_ahead
from storage.s3_endpoints import ReadParametersOnly, unread_parameters
from storage.s3_times import fast_timestamp
from storage.streams import ChunkStream, PassThrough

if TYPE_CHECKING:  # boto3-stubs: for type checking only
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef, ListObjectsV2OutputTypeDef

_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchBucket", "NoSuchUpload"}
_PRECONDITION = {"PreconditionFailed", "412"}
_CONFLICT = {"ConditionalRequestConflict", "409", "OperationAborted"}
_DENIED = {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
_CAS_TRIES = 5
# An If-Match no object ever has: a quoted MD5-sized hex string of zeros.
_WRONG_ETAG = '"' + "0" * 32 + '"'
# 8 MiB parts, 4 in flight: a 300 MiB upload stays near 50 MB of buffers on a 2-core box.
TRANSFER = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=4)
# A record written in chunks (a job's plan) stays in memory up to this size, then in a temp file.
SPOOL_BYTES = 8 << 20
# botocore sends every PUT with a body with `Expect: 100-continue`, and waits for the server's
# go-ahead before sending the body: a round trip more for each small record (two PUTs a datum),
# costing more than the body it could spare. PUTs up to this size send the body at once.
NO_CONTINUE_BYTES = 1 << 20
# The User-Agent of herd's requests, in botocore's legacy form (boto3 appends `Botocore/<version>`).
# botocore builds its default one anew for each request, its parts sanitised a character at a
# time (about 0.1 ms of CPU, a tenth of a small PUT's); a configured one is used as it is. Its
# parts are sanitised here once, as botocore does: a kernel's release name may hold anything.
_NOT_IN_A_PART = re.compile(r"[^A-Za-z0-9!$%&'*+\-.^_`|~]")


def user_agent(parts: Iterable[tuple[str, str]]) -> str:
    """'herd' then each (name, version) as `name/version`, every character botocore would not
    let into a part replaced by '-'."""
    return " ".join(["herd", *(f"{_NOT_IN_A_PART.sub('-', name)}/{_NOT_IN_A_PART.sub('-', version)}"
                               for name, version in parts)])


USER_AGENT = user_agent((("Boto3", boto3.__version__), ("Python", platform.python_version()),
                         (platform.system(), platform.release())))


class _Condition(TypedDict, total=False):
    """The precondition of a conditional PUT: create-only (`*`) or this ETag."""

    IfNoneMatch: str
    IfMatch: str


_session_lock = threading.Lock()
_session: boto3.session.Session | None = None
_unread: frozenset[str] = frozenset()  # the endpoint parameters S3's rules never read (s3_endpoints.py)


def _client(endpoint_url: str | None, max_attempts: int, connect_timeout: float, read_timeout: float) -> S3Client:
    """A client from one shared session: sessions load service models once, clients are cheap."""
    global _session
    # total_max_attempts counts the first try (botocore's `max_attempts` counts only retries:
    # 3 there is 4 requests); standard mode retries 5xx, throttling (503 SlowDown) and
    # connection errors with jittered exponential backoff (a random wait up to 1 s, 2 s, 4 s ... 20 s).
    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=16,
        user_agent=USER_AGENT,
    )
    with _session_lock:  # boto3 sessions are not thread-safe; clients are
        _session = _session or _new_session()
        client = _session.client("s3", endpoint_url=endpoint_url, config=config)
    _resolve_on_read_parameters(client, _unread)
    return client


def _resolve_on_read_parameters(client: S3Client, unread: frozenset[str]) -> None:
    """Resolve the client's endpoints without the parameters no rule reads, so botocore's cache
    serves requests for different keys (storage/s3_endpoints.py). A botocore without these
    internals keeps resolving as it does."""
    provider = getattr(getattr(client, "_ruleset_resolver", None), "_provider", None)
    resolve = getattr(provider, "resolve_endpoint", None)
    if unread and resolve is not None and not isinstance(resolve, ReadParametersOnly):
        provider.resolve_endpoint = ReadParametersOnly(resolve, unread)  # type: ignore[union-attr]


def _new_session() -> boto3.session.Session:
    """A session whose clients parse response timestamps with `_timestamp`; finds which endpoint
    parameters of S3's rule set (the latest, as its clients load) no rule reads."""
    global _unread
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp)
    try:
        _unread = unread_parameters(core.get_component("data_loader").load_service_model("s3", "endpoint-rule-set-1"))
    except BotoCoreError:  # a botocore without rule sets: nothing to drop
        _unread = frozenset()
    return boto3.session.Session(botocore_session=core)


def _timestamp(value: str) -> datetime:
    """The two forms S3 sends read directly (storage/s3_times.py), anything else by botocore."""
    return fast_timestamp(value) or parse_timestamp(value)


def _no_continue_for_small_bodies(params: dict[str, Any], **_: Any) -> None:
    """Drop botocore's `Expect: 100-continue` from a request whose body is at most NO_CONTINUE_BYTES."""
    size = determine_content_length(params.get("body"))
    if size is not None and size <= NO_CONTINUE_BYTES:
        params["headers"].pop("Expect", None)


@dataclass
class _CasOutcome:
    lost: bool = False
    conflict: bool = False
    retried: bool = False  # botocore resent the request: an earlier attempt may have landed


class S3ObjectStore:
    """An ObjectStore in one S3 bucket under a key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        *,
        max_attempts: int = 3,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        create_bucket: bool = True,
        check_conditional_writes: bool = True,
    ) -> None:
        if not bucket:
            raise InvalidArgument("S3 bucket name is empty")
        self.bucket = bucket
        self.prefix = folder_prefix(prefix.strip("/"))
        self.url = f"s3://{bucket}/{self.prefix}"
        self._client = _client(endpoint_url, max_attempts, connect_timeout, read_timeout)
        self.endpoint = self._client.meta.endpoint_url
        # A crash point between the parts of a multipart upload (tests of what a killed upload
        # leaves behind); costs one dict lookup per part when not armed.
        self._client.meta.events.register(
            "after-call.s3.UploadPart", lambda **_: failpoints.hit("s3.after_upload_part"))
        # botocore adds the header in a handler of every S3 call: only one registered last on
        # that same event runs after it (a PutObject-only one would run before).
        self._client.meta.events.register_last("before-call.s3", _no_continue_for_small_bodies)
        self._bucket_ready = not create_bucket
        self._bucket_lock = threading.Lock()
        # Off for a bucket herd only copies plain files into (egress): no probe keys land there.
        self._conditional_ok = not check_conditional_writes
        self._conditional_refusal: str | None = None
        self._conditional_lock = threading.Lock()

    def watch_requests(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        """Call `callback(operation, key)` before each S3 call this store makes, from the thread
        making it: the key below the store's prefix (a listing's: its prefix). How the benchmarks
        count what a datum costs in requests. Returns the function that stops the calls."""
        prefix, events = self.prefix, self._client.meta.events
        unique_id = f"herd-watch-{uuid.uuid4().hex}"

        def seen(params: dict[str, Any], model: Any, **_: Any) -> None:
            key = str(params.get("Key") or params.get("Prefix") or "")
            callback(model.name, key[len(prefix):] if key.startswith(prefix) else key)

        events.register("before-parameter-build.s3", seen, unique_id=unique_id)
        return lambda: events.unregister("before-parameter-build.s3", unique_id=unique_id)

    # -- the one error boundary ---------------------------------------------------------
    @contextmanager
    def _map_client_errors(self, key: str | None = None, cas: _CasOutcome | None = None) -> Iterator[None]:
        """Translate botocore/s3transfer errors into herd's tree (CAS races into `cas` flags)."""
        where = f"bucket '{self.bucket}' at {self.endpoint}"
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if cas is not None and (code in _PRECONDITION or status == "412"):
                cas.lost = True
                cas.retried = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) > 0
            elif cas is not None and (code in _CONFLICT or status == "409"):
                cas.conflict = True
            elif code == "BucketAlreadyOwnedByYou":
                raise AlreadyExists(f"bucket '{self.bucket}' already exists at {self.endpoint}") from exc
            elif code == "NoSuchBucket" or (key is None and status == "404"):
                raise NotFound(f"bucket '{self.bucket}' not found at {self.endpoint}") from exc
            elif code in _NOT_FOUND or status == "404":
                raise ObjectNotFound(key or "", self.url) from exc
            elif code in _DENIED or status == "403":
                raise StorageUnavailable(f"access denied to {where} ({code})") from exc
            else:
                message = error.get("Message") or code
                raise StorageUnavailable(f"S3 error {code or status} on {where}: {message}") from exc
        except NoCredentialsError as exc:
            raise StorageUnavailable(f"no AWS credentials found for {where}") from exc
        except (BotoCoreError, S3UploadFailedError, urllib3.exceptions.HTTPError) as exc:
            # urllib3's: a response body cut short (IncompleteRead) that botocore read eagerly
            raise StorageUnavailable(
                f"S3 endpoint {self.endpoint} unavailable for bucket '{self.bucket}': {exc}"
            ) from exc

    def _ensure_bucket(self) -> None:
        """Create the bucket on first use when it is missing."""
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return
            try:
                with self._map_client_errors():
                    self._client.head_bucket(Bucket=self.bucket)
            except NotFound:
                self._create_bucket()
            self._bucket_ready = True

    def _create_bucket(self) -> None:
        region = self._client.meta.region_name
        args: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            with self._map_client_errors():
                self._client.create_bucket(**args)
        except AlreadyExists:  # a concurrent first use won
            return
        except StorageUnavailable as exc:
            raise StorageUnavailable(f"cannot create missing bucket: {exc.message}") from exc

    def _key(self, key: str) -> str:
        check_key(key)
        self._ensure_bucket()
        return self.prefix + key

    def _write_key(self, key: str) -> str:
        """The full key for a write, after the one-time conditional-write check of the prefix."""
        full = self._key(key)
        self._ensure_conditional_writes()
        return full

    # -- conditional writes: checked once per prefix before the first write ---------------
    def _ensure_conditional_writes(self) -> None:
        if self._conditional_ok:
            return
        with self._conditional_lock:
            if self._conditional_ok:
                return
            if self._conditional_refusal is None and not self._verdict_stored():
                problems = self._probe_conditional_writes()
                if problems:
                    self._conditional_refusal = (
                        f"S3 endpoint {self.endpoint} does not honour conditional writes for "
                        f"bucket '{self.bucket}' ({'; '.join(problems)}): herd refuses to write "
                        "there, as concurrent writers would silently overwrite each other; use a "
                        "server that honours If-None-Match and If-Match (AWS S3, a recent MinIO, "
                        "SeaweedFS)"
                    )
                else:
                    self._store_verdict()
            if self._conditional_refusal is not None:
                raise StorageUnavailable(self._conditional_refusal)
            self._conditional_ok = True

    def _verdict_stored(self) -> bool:
        try:
            with self._map_client_errors(CONDITIONAL_WRITES_KEY):
                body = self._client.get_object(Bucket=self.bucket, Key=self.prefix + CONDITIONAL_WRITES_KEY)["Body"].read()
        except ObjectNotFound:
            return False
        try:
            return json.loads(body).get("honoured") is True
        except (ValueError, AttributeError):
            return False  # a damaged verdict: probe again

    def _store_verdict(self) -> None:
        body = json.dumps({
            "honoured": True, "endpoint": self.endpoint,
            "checked": datetime.now(timezone.utc).isoformat(),
        }, sort_keys=True).encode()
        with self._map_client_errors(CONDITIONAL_WRITES_KEY):
            self._client.put_object(Bucket=self.bucket, Key=self.prefix + CONDITIONAL_WRITES_KEY, Body=body)

    def _probe_conditional_writes(self) -> list[str]:
        """What the server did wrong with conditional PUTs on a fresh probe key (empty: nothing)."""
        key = probe_key(uuid.uuid4().hex)
        full = self.prefix + key
        problems: list[str] = []
        try:
            first = self._conditional_status(key, b"probe 1", IfNoneMatch="*")
            if first != 200:
                return [f"a create-only PUT of a new key answered {first}"]
            second = self._conditional_status(key, b"probe 2", IfNoneMatch="*")
            if second != 412:
                problems.append(f"a second create-only PUT (If-None-Match: *) answered {second}, not 412")
            wrong = self._conditional_status(key, b"probe 3", IfMatch=_WRONG_ETAG)
            if wrong != 412:
                problems.append(f"a PUT with a wrong If-Match answered {wrong}, not 412")
        finally:
            with self._map_client_errors(key):
                self._client.delete_object(Bucket=self.bucket, Key=full)
        return problems

    def _conditional_status(self, key: str, body: bytes, **condition: Unpack[_Condition]) -> int | str:
        """The HTTP status of one conditional PUT (200 when it wrote); access errors raise."""
        try:
            with self._map_client_errors(key):
                try:
                    self._client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=body, **condition)
                except ClientError as exc:
                    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                    code = str(exc.response.get("Error", {}).get("Code", ""))
                    if code in _PRECONDITION or status == 412:
                        return 412
                    if code in _DENIED or status in (403, 404):
                        raise  # translated by _map_client_errors: not a verdict on conditionals
                    return f"{status} {code}".strip()
        except ObjectNotFound as exc:  # the bucket vanished under the probe
            raise StorageUnavailable(f"bucket '{self.bucket}' not found at {self.endpoint}") from exc
        return 200

    # -- writes -------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        """Write `data` at `key`, replacing any previous body."""
        full = self._write_key(key)
        with self._map_client_errors(key):
            self._client.put_object(Bucket=self.bucket, Key=full, Body=data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create `key` with `data` (If-None-Match: *); False when it exists."""
        return self.compare_and_set(key, None, data)

    def put_chunks_if_absent(self, key: str, chunks: Iterable[bytes]) -> bool:
        """Create `key` from `chunks` spooled to a temp file (in memory up to 8 MiB), then one
        create-only PUT of that file: a PUT needs its length before it starts."""
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            spool.writelines(chunks)
            return self._conditional_put(key, {"IfNoneMatch": "*"}, spool)

    def compare_and_set(self, key: str, token: str | None, data: bytes) -> bool:
        """Write iff the ETag is `token` (None = create-only); 409 conflicts are retried."""
        condition: _Condition = {"IfNoneMatch": "*"} if token is None else {"IfMatch": token}
        return self._conditional_put(key, condition, data)

    def _conditional_put(self, key: str, condition: _Condition, body: bytes | IO[bytes]) -> bool:
        full = self._write_key(key)
        for attempt in range(_CAS_TRIES):
            cas = _CasOutcome()
            if not isinstance(body, bytes):
                body.seek(0)
            try:
                with self._map_client_errors(key, cas):
                    self._client.put_object(Bucket=self.bucket, Key=full, Body=body, **condition)
            except ObjectNotFound:  # If-Match on a key that is gone: that race is lost too
                return False
            if cas.lost and cas.retried:
                return self._landed(key, body)
            if not cas.conflict:
                return not cas.lost
            time.sleep(0.01 * 2**attempt)
        return False

    def _landed(self, key: str, body: bytes | IO[bytes]) -> bool:
        """After a resent conditional PUT got 412: did our own first attempt land?

        A timed-out attempt may have been written before botocore resent it, and then the resend
        fails its precondition against our own write. Bodies never repeat (design: generation
        counter + writer id), so finding our exact body means the write was ours.
        """
        current = self.read_versioned(key)
        if current is None:
            return False
        if not isinstance(body, bytes):
            body.seek(0)
            body = body.read()  # this rare race only: a spooled body is read back whole
        return current[0] == body

    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file with the transfer manager (multipart above 8 MiB)."""
        if not Path(path).is_file():
            raise NotFound(f"local file '{path}' not found")
        self._transfer(key, os.fspath(path))

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        """Upload a stream until EOF with the transfer manager (bounded part buffers)."""
        if isinstance(stream, io.RawIOBase):
            # s3transfer makes each read of a stream one part. A raw stream may return fewer
            # bytes than asked (herd's PassThrough hands out one block a read): its object was
            # cut in 1 MiB parts, which S3 refuses below 5 MiB but for the last one. A buffered
            # reader reads until the part is full or the stream ends.
            stream = cast(BinaryIO, io.BufferedReader(stream, TRANSFER.multipart_chunksize))
        self._transfer(key, stream)

    def _transfer(self, key: str, source: str | BinaryIO) -> None:
        full = self._write_key(key)
        with self._map_client_errors(key), TransferManager(self._client, TRANSFER) as manager:
            manager.upload(source, self.bucket, full).result()

    # -- reads --------------------------------------------------------------------------
    def _get_object(self, key: str) -> GetObjectOutputTypeDef:
        full = self._key(key)
        with self._map_client_errors(key):
            return self._client.get_object(Bucket=self.bucket, Key=full)

    def get(self, key: str) -> bytes:
        """The whole body of `key`; ObjectNotFound when missing."""
        response = self._get_object(key)
        with self._map_client_errors(key):
            return response["Body"].read()

    def get_file(self, key: str, path: Path) -> None:
        """One streaming GET into a temp file beside `path`, then rename."""
        path = Path(path)
        response = self._get_object(key)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.herd-tmp")
        try:
            with self._map_client_errors(key), open(tmp, "wb") as out:
                for chunk in response["Body"].iter_chunks(COPY_CHUNK):
                    out.write(chunk)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            response["Body"].close()

    def open(self, key: str) -> BinaryIO:
        """A buffered streaming reader over `key`.

        The first GET asks for TRANSFER's first part. An object no longer than that is this one
        streaming GET. A longer one streams that part while its later parts are fetched ahead,
        TRANSFER.max_request_concurrency at a time, each ranged GET pinned to the first one's ETag, so
        a read never mixes two versions of a key (storage/read_ahead.py).
        """
        full, part = self._key(key), TRANSFER.multipart_chunksize
        with self._map_client_errors(key):
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=full, Range=f"bytes=0-{part - 1}")
            except ClientError as exc:
                if not _unsatisfiable(exc):
                    raise
                # An empty object has no byte 0 to range over.
                response = self._client.get_object(Bucket=self.bucket, Key=full)
        # A read error of the body (a lost connection) becomes a herd error naming the key.
        first = PassThrough(response["Body"], errors=lambda: self._map_client_errors(key))
        size = _total_size(response.get("ContentRange"))
        if size is None or size <= part:  # the whole object (a server that ignores Range sends it all)
            return io.BufferedReader(first, COPY_CHUNK)
        etag = response["ETag"]
        parts = read_ahead(
            first, part, size, lambda offset, length: self._get_part(key, etag, offset, length),
            part=part, ahead=TRANSFER.max_request_concurrency, where=f"object '{key}' at {self.url}",
        )
        return io.BufferedReader(ChunkStream(parts), COPY_CHUNK)

    def _get_part(self, key: str, etag: str, offset: int, length: int) -> bytes:
        """Bytes offset..offset+length-1 of `key` as it was when its read began (ETag `etag`)."""
        with self._map_client_errors(key):
            try:
                response = self._client.get_object(
                    Bucket=self.bucket, Key=self._key(key), Range=f"bytes={offset}-{offset + length - 1}", IfMatch=etag
                )
            except ClientError as exc:
                if _error_code(exc) in _PRECONDITION:
                    raise StorageUnavailable(
                        f"object '{key}' at {self.url} changed while it was read; read it again"
                    ) from exc
                raise
            return response["Body"].read()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """One ranged GET (shorter past the end; nothing at or after it)."""
        if length <= 0:
            return b""
        with self._map_client_errors(key):
            try:
                response = self._client.get_object(
                    Bucket=self.bucket, Key=self._key(key), Range=f"bytes={offset}-{offset + length - 1}"
                )
            except ClientError as exc:
                if _unsatisfiable(exc):
                    return b""  # the range starts past the end: the caller's hash check says what broke
                raise
            return response["Body"].read()

    def exists(self, key: str) -> bool:
        """Whether `key` exists (HEAD)."""
        full = self._key(key)
        try:
            with self._map_client_errors(key):
                self._client.head_object(Bucket=self.bucket, Key=full)
        except ObjectNotFound:
            return False
        return True

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The body of `key` and its ETag, or None when missing."""
        try:
            response = self._get_object(key)
        except ObjectNotFound:
            return None
        with self._map_client_errors(key):
            return response["Body"].read(), response["ETag"]

    def local_path(self, key: str) -> Path | None:
        """S3 objects are never local files."""
        return None

    # -- listing and delete -------------------------------------------------------------
    def _pages(self, prefix: str, **extra: Any) -> Iterator[ListObjectsV2OutputTypeDef]:
        self._ensure_bucket()
        paginator = self._client.get_paginator("list_objects_v2")
        with self._map_client_errors():
            yield from paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix, **extra)

    def list(self, prefix: str) -> Iterator[str]:
        """Every key starting with `prefix`, sorted (S3 lists in UTF-8 byte order)."""
        return (info.key for info in self.list_with_times(prefix))

    def list_with_times(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every key under `prefix`, sorted, with its size and LastModified (the server's clock)."""
        cut = len(self.prefix)
        for page in self._pages(prefix):
            for item in page.get("Contents", ()):
                key = item["Key"][cut:]
                if not hidden(key, prefix):
                    yield ObjectInfo(key, int(item.get("Size", 0)), _utc(item["LastModified"]))

    def incomplete_uploads(self) -> Iterator[IncompleteUpload]:
        """Multipart uploads under the prefix that were started and never completed or aborted."""
        self._ensure_bucket()
        cut = len(self.prefix)
        paginator = self._client.get_paginator("list_multipart_uploads")
        with self._map_client_errors():
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Uploads", ()):
                    parts = self._parts(item["Key"], item["UploadId"])
                    if parts is not None:
                        size, last_part = parts
                        started = _utc(item["Initiated"])
                        yield IncompleteUpload(
                            key=item["Key"][cut:], upload_id=item["UploadId"], size=size,
                            started=max(started, last_part) if last_part else started,
                        )

    def _parts(self, full: str, upload_id: str) -> tuple[int, datetime | None] | None:
        """Bytes the parts of an upload hold and when the last one landed (an upload still
        sending parts is active, whatever its start; some servers, moto among them, report a
        fixed `Initiated`); None when it was completed or aborted meanwhile."""
        size, last = 0, None
        paginator = self._client.get_paginator("list_parts")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Key=full, UploadId=upload_id):
                for part in page.get("Parts", ()):
                    size += int(part.get("Size", 0))
                    if "LastModified" in part:
                        landed = _utc(part["LastModified"])
                        last = landed if last is None else max(last, landed)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return None
            raise
        return size, last

    def abort_upload(self, upload: IncompleteUpload) -> None:
        """Abort a multipart upload (its parts are freed); one already gone is fine."""
        full = self._key(upload.key)
        try:
            with self._map_client_errors(upload.key):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload.upload_id)
        except ObjectNotFound:  # NoSuchUpload: completed or aborted meanwhile
            return

    def list_children(self, prefix: str) -> builtins.list[str]:
        """Names one level below the folder `prefix` (Delimiter='/')."""
        folder = folder_prefix(prefix)
        cut = len(self.prefix)
        keys: list[str] = []
        for page in self._pages(folder, Delimiter="/"):
            keys += [item["Key"][cut:] for item in page.get("Contents", ())]
            keys += [item["Prefix"][cut:] for item in page.get("CommonPrefixes", ())]
        return children_of([key for key in keys if not hidden(key, folder)], folder)

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is fine."""
        full = self._write_key(key)
        with self._map_client_errors(key):
            self._client.delete_object(Bucket=self.bucket, Key=full)

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.url!r}, endpoint={self.endpoint!r})"


def _error_code(exc: ClientError) -> str:
    """The S3 error code of `exc`, or its HTTP status when the body named none."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code or str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def _unsatisfiable(exc: ClientError) -> bool:
    """A 416: the range asked for starts at or past the object's end."""
    status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return status == "416" or _error_code(exc) == "InvalidRange"


def _total_size(content_range: str | None) -> int | None:
    """The whole object's size from a Content-Range (`bytes 0-8388607/268435456`); None when
    absent or unknown (`*`)."""
    if not content_range or "/" not in content_range:
        return None
    total = content_range.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def open_s3_url(url: str, endpoint_url: str | None = None) -> BinaryIO:
    """A streaming reader over `s3://bucket/key` (for `put-file -f s3://...`)."""
    parts = urlsplit(url)
    key = parts.path.lstrip("/")
    if parts.scheme != "s3" or not parts.netloc or not key:
        raise InvalidArgument(f"invalid S3 URL '{url}': expected s3://bucket/key")
    store = S3ObjectStore(parts.netloc, "", endpoint_url, create_bucket=False)
    try:
        return store.open(key)
    except NotFound:
        raise NotFound(f"S3 object '{url}' not found at {store.endpoint}") from None
