"""Storage configuration, read from HERD_* environment variables in this one place."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.setting_types import OptionalHttpUrl, StorageUrl


# --- the settings -------------------------------------------------------------------------


def _default_storage() -> str:
    return "file://" + str(Path.home() / ".herd")


class StorageSettings(BaseSettings):
    """Where herd keeps its repos, commits, blobs and pipeline records."""

    model_config = SettingsConfigDict(env_prefix="HERD_", extra="ignore", validate_default=True)

    storage: StorageUrl = Field(
        default_factory=_default_storage,
        description=(
            "Object store URL: `file:///path` (a local folder), `s3://bucket/prefix` (created on "
            "first use) or `memory://` (this process only). Default `file://~/.herd`."
        ),
    )
    s3_endpoint_url: OptionalHttpUrl = Field(
        None,
        description=(
            "S3 endpoint for `s3://` storage and `put-file -f s3://...` (MinIO, SeaweedFS, moto). "
            "Unset or empty: boto3's own `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, else AWS."
        ),
    )


class FailpointSettings(BaseSettings):
    """Crash points for crash-safety tests (storage/failpoints.py); never set in production."""

    model_config = SettingsConfigDict(env_prefix="HERD_", extra="ignore")

    failpoints: str = Field(
        "",
        description=(
            "Tests only: `name[:n],...` makes the process exit with status 137 at the n-th hit "
            "of each named crash point (see docs/guarantees.md). Empty: none."
        ),
    )
