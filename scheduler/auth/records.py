"""The stored records of auth (keys in storage/layout.py: auth/state, auth/tokens/, auth/roles/)."""

from __future__ import annotations

from datetime import datetime

from storage.model import Record


class AuthState(Record):
    """Present once auth is active; names the admins."""

    activated: datetime
    admins: tuple[str, ...]
    generation: int = 0
    writer: str = ""


class TokenRecord(Record):
    """One token, stored under the SHA-256 of its value (never the value itself)."""

    digest: str
    user: str
    created: datetime
    expires: datetime | None = None


class RepoRoles(Record):
    """The roles users hold on one repo."""

    repo: str
    roles: dict[str, str] = {}
    generation: int = 0
    writer: str = ""
