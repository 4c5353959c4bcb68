"""Create the bucket of HERD_STORAGE (s3://bucket/prefix) when it is missing; then exit 0.

The one-shot `bucket-init` service of docker-compose.yml runs this in the herd image once the
S3 server is healthy; the scheduler and workers start only after it exited 0. Idempotent: an
existing bucket is fine. The endpoint and credentials are boto3's usual ones plus
HERD_S3_ENDPOINT_URL, read through herd's own StorageSettings. Retries until a deadline
(BUCKET_INIT_TIMEOUT seconds, default 60) so a server that is still warming up is waited for.
"""

from __future__ import annotations

import os
import sys
import time
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from storage.settings import StorageSettings

RETRY_SECONDS = 1.0


def main() -> int:
    settings = StorageSettings()
    parts = urlsplit(settings.storage)
    if parts.scheme != "s3" or not parts.netloc:
        print(f"bucket-init: HERD_STORAGE is {settings.storage!r}, not s3://bucket/prefix: nothing to do")
        return 0
    bucket = parts.netloc
    client = boto3.client(
        "s3", endpoint_url=settings.s3_endpoint_url, config=Config(retries={"mode": "standard", "max_attempts": 3})
    )
    where = client.meta.endpoint_url
    deadline = time.monotonic() + float(os.environ.get("BUCKET_INIT_TIMEOUT", "60"))
    while True:
        try:
            return _ensure(client, bucket, where)
        except (BotoCoreError, ClientError) as exc:
            if time.monotonic() >= deadline:
                print(f"bucket-init: cannot create bucket '{bucket}' at {where}: {exc}", file=sys.stderr)
                return 1
            print(f"bucket-init: {where} not ready ({exc}); retrying", file=sys.stderr)
            time.sleep(RETRY_SECONDS)


def _ensure(client, bucket: str, where: str) -> int:  # noqa: ANN001 - a boto3 client
    try:
        client.head_bucket(Bucket=bucket)
        print(f"bucket-init: bucket '{bucket}' already exists at {where}")
        return 0
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    region = client.meta.region_name
    args: dict = {"Bucket": bucket}
    if region and region != "us-east-1":
        args["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**args)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    print(f"bucket-init: created bucket '{bucket}' at {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
