"""Where `herd serve` listens: HERD_SERVE_HOST and HERD_SERVE_PORT, read in this one place."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.setting_types import Word


def _port(value: Any) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError("expected a TCP port number (1 to 65535)")
    return int(text)


Port = Annotated[int, BeforeValidator(_port)]


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERD_", extra="ignore", validate_default=True)

    serve_host: Word = Field(
        "127.0.0.1",
        description="Address `herd serve` listens on: loopback by default; `0.0.0.0` for every interface.",
    )
    serve_port: Port = Field(8650, description="TCP port of `herd serve` (its API at `/api/v1`, OpenAPI at `/docs`).")
