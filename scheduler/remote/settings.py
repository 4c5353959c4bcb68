"""Where the CLI finds `herd serve`: HERD_ADDRESS, read in this one place."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.setting_types import Folder, OptionalHttpUrl


def _token(value: Any) -> str | None:
    """Printable ASCII without spaces (it goes into an HTTP header); empty = unset."""
    if value is None or value == "":
        return None
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    if not re.fullmatch(r"[!-~]{1,1000}", text):
        raise ValueError("expected a token: printable ASCII without spaces (herd auth create-token makes one)")
    return text


Token = Annotated[SecretStr | None, BeforeValidator(_token)]


class RemoteSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERD_", extra="ignore")

    address: OptionalHttpUrl = Field(
        None,
        description=(
            "URL of a `herd serve` (`http://127.0.0.1:8650`). Set: every verb goes through that server, which "
            "holds the storage and broker credentials; this CLI reads neither HERD_STORAGE nor HERD_BROKER. "
            "Unset or empty: the CLI works on storage itself."
        ),
    )
    token: Token = Field(
        None,
        description=(
            "The token the CLI sends to `herd serve` once its auth is active (`herd auth activate`). Unset: the "
            "one `herd auth login` stored in HERD_CONFIG_DIR."
        ),
    )
    config_dir: Folder | None = Field(
        None,
        description=(
            "Folder of the CLI's own files, an absolute path: `herd auth login` keeps the token there (`token`, "
            "mode 0600). Unset: `~/.config/herd`."
        ),
    )
