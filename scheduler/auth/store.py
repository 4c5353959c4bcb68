"""Tokens and roles in the object store: activate, authenticate, create and revoke tokens, roles.

A token is 32 random bytes (`herd_` + URL-safe base64); only its SHA-256 is stored, as the key
of its record, and the record's copy is compared in constant time. Nothing is cached: a token
revoked (its record deleted) or expired stops working on the next request. Auth state and role
records change by compare-and-set, so two servers on one store never lose an update.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from scheduler.auth.records import AuthState, RepoRoles, TokenRecord
from scheduler.auth.rules import NOBODY_CHECKS, NO_ROLE, Principal, validate_role, validate_user
from storage.cas import read_mutable, update_mutable, writer_id
from storage.errors import AlreadyExists, InvalidArgument, ObjectNotFound, Unauthenticated
from storage.layout import AUTH_STATE_KEY, roles_key, token_key
from storage.objects import ObjectStore

TOKEN_PREFIX = "herd_"
MAX_TOKEN_LENGTH = 200  # a header longer than any token herd makes is refused before hashing


def _now() -> datetime:
    return datetime.now(timezone.utc)


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class AuthStore:
    def __init__(self, objects: ObjectStore, clock: Callable[[], datetime] = _now) -> None:
        self.objects = objects
        self.clock = clock

    # ---- state ---------------------------------------------------------------------------

    def state(self) -> AuthState | None:
        found = read_mutable(self.objects, AUTH_STATE_KEY, AuthState)
        return found[0] if found else None

    def active(self) -> bool:
        return self.state() is not None

    def activate(self, admin: str) -> str:
        """Turn auth on with `admin` as the first admin; its token, which is shown once.

        The token's record is written before the state, so a crash in between leaves auth off
        (and an unused token nobody saw); a second activation is AlreadyExists."""
        validate_user(admin)
        if self.active():
            raise AlreadyExists("auth is already active: log in with an admin's token (herd auth login)")
        token = self._new_token(admin, None)
        state = AuthState(activated=self.clock(), admins=(admin,), generation=1, writer=writer_id())
        if not self.objects.put_if_absent(AUTH_STATE_KEY, state.canonical_bytes()):
            self.revoke(token)
            raise AlreadyExists("auth is already active: log in with an admin's token (herd auth login)")
        return token

    # ---- tokens --------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> Principal:
        """Who `token` speaks for; every request while auth is off is an admin."""
        state = self.state()
        if state is None:
            return NOBODY_CHECKS
        if not token:
            raise Unauthenticated("auth is active and no token was given: run herd auth login, or set HERD_TOKEN")
        record = self._record(token)
        if record is None:
            raise Unauthenticated("the token is unknown or revoked: run herd auth login with a valid token")
        if record.expires is not None and self.clock() >= record.expires:
            raise Unauthenticated(f"the token of user '{record.user}' expired at "
                                  f"{record.expires.isoformat()}: ask an admin for a new one")
        return Principal(record.user, admin=record.user in state.admins)

    def create_token(self, user: str, ttl: timedelta | None = None) -> str:
        validate_user(user)
        if ttl is not None and ttl <= timedelta(0):
            raise InvalidArgument("--ttl must be a positive duration")
        return self._new_token(user, ttl)

    def token_user(self, token: str) -> str | None:
        record = self._record(token)
        return record.user if record else None

    def revoke(self, token: str) -> bool:
        """Delete a token's record; False when there was none (unknown or already revoked)."""
        if self._record(token) is None:
            return False
        self.objects.delete(token_key(digest_of(token)))
        return True

    def _new_token(self, user: str, ttl: timedelta | None) -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = digest_of(token)
        now = self.clock()
        record = TokenRecord(digest=digest, user=user, created=now, expires=now + ttl if ttl else None)
        if not self.objects.put_if_absent(token_key(digest), record.canonical_bytes()):
            raise AlreadyExists("a token collided with an existing one; try again")  # 2^-256
        return token

    def _record(self, token: str) -> TokenRecord | None:
        if len(token) > MAX_TOKEN_LENGTH:
            return None
        digest = digest_of(token)
        try:
            record = TokenRecord.from_bytes(self.objects.get(token_key(digest)), token_key(digest))
        except ObjectNotFound:
            return None
        return record if hmac.compare_digest(record.digest, digest) else None

    # ---- roles ---------------------------------------------------------------------------

    def roles(self, repo: str) -> dict[str, str]:
        found = read_mutable(self.objects, roles_key(repo), RepoRoles)
        return dict(found[0].roles) if found else {}

    def role_of(self, user: str, repo: str) -> str | None:
        return self.roles(repo).get(user)

    def set_role(self, repo: str, user: str, role: str) -> dict[str, str]:
        """Give `user` `role` on `repo` (`none` takes it away); the repo's roles after."""
        validate_user(user)
        validate_role(role, allow_none=True)

        def change(current: RepoRoles | None) -> RepoRoles | None:
            roles = dict(current.roles) if current else {}
            if role == NO_ROLE:
                if user not in roles:
                    return None
                roles.pop(user)
            elif roles.get(user) == role:
                return None
            else:
                roles[user] = role
            generation = current.generation + 1 if current else 1
            return RepoRoles(repo=repo, roles=roles, generation=generation, writer=writer_id())

        stored = update_mutable(self.objects, roles_key(repo), RepoRoles, change)
        return dict(stored.roles) if stored else {}

    def forget_repo(self, repo: str) -> None:
        """A deleted repo's roles go with it, so a new repo of that name starts with none."""
        self.objects.delete(roles_key(repo))
