"""The checks every herd settings class shares: `load_settings` and the annotated field types.

The CLI loads every settings class before a command does any work, so a bad variable is one
line naming it, never a traceback halfway through a write. Empty values: a setting whose
default is "unset" (`HERD_S3_ENDPOINT_URL=`, `HERD_BROKER=`, `HERD_OUTPUT_QUOTA=`) takes an
empty value as unset; a setting with a real default refuses an empty value, because silently
using the default (a local folder instead of the bucket someone meant) would put data where
nobody looks for it. No environment is read here: the `*/settings.py` classes do that.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BeforeValidator, ValidationError
from pydantic_settings import BaseSettings
from pydantic_settings.exceptions import SettingsError

from storage.errors import InvalidArgument

S = TypeVar("S", bound=BaseSettings)

# Control characters (C0, DEL, C1) and line/paragraph separators: never in a URL or a folder.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_SECONDS = 7 * 24 * 3600.0  # longer than a week is a typo (ms for s), not a setting
MAX_WORKERS = 1024  # thread pool / processes of one host
_TRUE = frozenset({"1", "true", "yes", "on", "t", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "f", "n"})


# --- loading: a pydantic error becomes one line naming the variable -------------------------


def load_settings(cls: type[S]) -> S:
    """An instance of `cls` from the environment; InvalidArgument naming the variable if bad."""
    try:
        return cls()
    except ValidationError as exc:
        raise InvalidArgument(settings_error_message(cls, exc)) from None
    except SettingsError as exc:  # a value pydantic-settings could not even decode
        raise InvalidArgument(" ".join(str(exc).split())) from None


def settings_error_message(cls: type[BaseSettings], exc: ValidationError) -> str:
    """`HERD_X: invalid value 'v': expected ...` for each bad field, on one line."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        name = f"{prefix}{field}".upper()
        reason = error["msg"]
        if error["type"] == "value_error" and "error" in error.get("ctx", {}):
            reason = str(error["ctx"]["error"])  # our own words, without pydantic's "Value error, "
        shown = repr(_redacted(error.get("input")))
        shown = shown if len(shown) <= 200 else shown[:200] + "..."  # one line, even for 1 MB
        if _secret(cls, field):
            shown = "(hidden)"  # a token is never echoed, not even a wrong one
        parts.append(f"{name}: invalid value {shown}: {reason}")
    return "; ".join(dict.fromkeys(parts))


def _secret(cls: type[BaseSettings], field: str) -> bool:
    """Whether a field holds a secret (typed SecretStr): its value never reaches a message."""
    info = cls.model_fields.get(field)
    return info is not None and "SecretStr" in repr(info.annotation)


def _redacted(value: Any) -> Any:
    """The value with a URL's password hidden: error lines end up in logs and CI output."""
    if isinstance(value, str) and "://" in value and "@" in value:
        scheme, _, rest = value.partition("://")
        userinfo, at, host = rest.rpartition("@")
        if at and ":" in userinfo:
            return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}"
    return value


# --- field checks: each returns the parsed value or raises ValueError with the expectation ----


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _integer(lowest: int, limit: int, expected: str) -> Callable[[Any], int]:
    """An integer from `lowest` to `limit`, given as an int or as plain digits (no sign, no unit)."""

    def check(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(expected)
        if isinstance(value, int):
            number = value
        else:
            text = str(value).strip()
            if not re.fullmatch(r"[0-9]{1,20}", text):
                raise ValueError(expected)
            number = int(text)
        if not lowest <= number <= limit:
            raise ValueError(expected)
        return number

    return check


def _positive_int(limit: int, expected: str = "") -> Callable[[Any], int]:
    return _integer(1, limit, expected or f"expected a positive integer (1 to {limit})")


def _optional_positive_int(value: Any) -> int | None:
    if value is None or value == "":
        return None  # empty = unset
    return _positive_int(2**63 - 1, "expected a positive number of bytes (empty or unset: no limit)")(value)


def _seconds(value: Any) -> float:
    expected = f"expected a number of seconds greater than 0 and at most {MAX_SECONDS:.0f}"
    if isinstance(value, bool):
        raise ValueError(expected)
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(expected) from None
    if not math.isfinite(number) or not 0 < number <= MAX_SECONDS:
        raise ValueError(expected)
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true or false")


def _word(value: Any) -> str:
    """A name used as a key or label: printable, no spaces, at most 255 characters."""
    text = _text(value)
    if text is None or not re.fullmatch(r"[!-~]{1,255}", text):
        raise ValueError("expected 1-255 printable ASCII characters without spaces")
    return text


def _storage_url(value: Any) -> str:
    # InvalidArgument, not ValueError: pydantic passes it through, so StorageSettings(storage=...)
    # built in code refuses a bad URL exactly as the factory does, naming it.
    text = _text(value)
    if text is not None and not _CONTROL.search(text):
        parts = urlsplit(text)
        if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path.startswith("/"):
            return text
        if (parts.scheme == "s3" and parts.netloc) or parts.scheme == "memory":
            return text
    hint = " (unset it for the default)" if text == "" else ""
    raise InvalidArgument(
        f"HERD_STORAGE: invalid value {_redacted(value)!r}: expected file:///absolute/path, "
        f"s3://bucket/prefix or memory://name{hint}"
    )


def _optional_http_url(value: Any) -> str | None:
    if value is None or value == "":
        return None  # empty = unset: boto3's own endpoint variables, else AWS
    text = _text(value)
    expected = "expected an http:// or https:// URL (empty or unset: boto3's default endpoint)"
    if text is None or _CONTROL.search(text):
        raise ValueError(expected)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(expected)
    _check_port(parts, expected)
    return text


def _optional_redis_url(value: Any) -> str | None:
    if value is None or value == "":
        return None  # empty = unset: the CLI runs jobs in-process
    text = _text(value)
    expected = "expected redis://host:port/db or rediss://host:port/db (empty or unset: no broker)"
    if text is None or _CONTROL.search(text):
        raise ValueError(expected)
    parts = urlsplit(text)
    if parts.scheme not in ("redis", "rediss") or not re.fullmatch(r"/?[0-9]*", parts.path):
        raise ValueError(expected)
    _check_port(parts, expected)
    return text


def _check_port(parts: Any, expected: str) -> None:
    try:
        parts.port  # noqa: B018 - urllib raises ValueError for a bad port only when asked
    except ValueError:
        raise ValueError(expected) from None


def _folder(value: Any) -> str:
    text = _text(value)
    if not text or _CONTROL.search(text) or not Path(text).is_absolute():
        raise ValueError("expected an absolute folder path")
    return text


def one_of(*allowed: str) -> Callable[[Any], str]:
    """A check for a str field that must be one of `allowed` (use in BeforeValidator)."""

    def check(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of: {', '.join(allowed)}")
        return str(value)

    return check


WorkerCount = Annotated[int, BeforeValidator(_positive_int(MAX_WORKERS))]
OptionalPositiveInt = Annotated[int | None, BeforeValidator(_optional_positive_int)]
ByteCount = Annotated[int, BeforeValidator(_integer(0, 2**63 - 1, "expected a number of bytes (digits, 0 or more)"))]
Seconds = Annotated[float, BeforeValidator(_seconds)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Word = Annotated[str, BeforeValidator(_word)]
StorageUrl = Annotated[str, BeforeValidator(_storage_url)]
OptionalHttpUrl = Annotated[str | None, BeforeValidator(_optional_http_url)]
OptionalRedisUrl = Annotated[str | None, BeforeValidator(_optional_redis_url)]
Folder = Annotated[str, BeforeValidator(_folder)]
