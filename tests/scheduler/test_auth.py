"""Auth's rules (pure) and its store (tokens hashed, roles by CAS) on memory, a folder and S3."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.auth.rules import (
    NOBODY_CHECKS, OWNER, READER, ROLES, WRITER, Principal, require, require_admin, satisfies, validate_role,
    validate_user,
)
from scheduler.auth.store import AuthStore, digest_of
from storage.errors import AlreadyExists, InvalidArgument, PermissionDenied, Unauthenticated
from storage.layout import AUTH_PREFIX, token_key


# ---- rules -------------------------------------------------------------------------------------


@given(st.sampled_from(ROLES), st.sampled_from(ROLES))
def test_a_role_covers_exactly_the_roles_below_it(held: str, needed: str) -> None:
    assert satisfies(held, needed) == (ROLES.index(held) >= ROLES.index(needed))


def test_no_role_covers_nothing_and_admins_need_none() -> None:
    assert not any(satisfies(None, role) for role in ROLES)
    require(Principal("root", admin=True), "r", OWNER, None)
    with pytest.raises(PermissionDenied, match="user 'bob' needs the writer role on repo 'images' \\(has reader\\)"):
        require(Principal("bob"), "images", WRITER, READER)
    with pytest.raises(PermissionDenied, match="only an admin can create tokens"):
        require_admin(Principal("bob"), "create tokens")


@pytest.mark.parametrize("user", ["", "a b", "-x", "x" * 129, "é", "a/b", "a\nb", None, 3])
def test_bad_user_names_are_refused_naming_the_rule(user: object) -> None:
    with pytest.raises(InvalidArgument, match="invalid user name"):
        validate_user(user)


def test_good_user_names_and_roles() -> None:
    for user in ("alice", "robot:ci", "github:bob", "a.b@example.org", "x" * 128):
        assert validate_user(user) == user
    assert validate_role("none", allow_none=True) == "none"
    with pytest.raises(InvalidArgument, match="expected one of reader, writer, owner"):
        validate_role("none")
    with pytest.raises(InvalidArgument, match="invalid role 'admin'"):
        validate_role("admin")


# ---- store -------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def test_off_until_activated_then_every_request_needs_a_valid_token(object_store) -> None:
    auth = AuthStore(object_store)
    assert auth.authenticate(None) == NOBODY_CHECKS  # off: as without auth at all
    token = auth.activate("admin")
    assert token.startswith("herd_") and len(token) > 40
    assert auth.authenticate(token) == Principal("admin", admin=True)
    for bad in (None, "", "herd_wrong", token + "x", token[:-1], "x" * 10_000):
        with pytest.raises(Unauthenticated):
            auth.authenticate(bad)
    with pytest.raises(AlreadyExists, match="auth is already active"):
        auth.activate("mallory")


def test_tokens_are_stored_hashed_and_never_in_clear(object_store) -> None:
    auth = AuthStore(object_store)
    token = auth.activate("admin")
    other = auth.create_token("alice")
    stored = b"".join(object_store.get(key) for key in object_store.list(AUTH_PREFIX))
    assert token.encode() not in stored and other.encode() not in stored
    assert object_store.exists(token_key(digest_of(other)))


def test_a_revoked_or_expired_token_stops_at_once(object_store) -> None:
    clock = Clock()
    auth = AuthStore(object_store, clock)
    auth.activate("admin")
    alice = auth.create_token("alice", ttl=timedelta(hours=1))
    assert auth.authenticate(alice) == Principal("alice")
    clock.now += timedelta(minutes=59)
    assert auth.authenticate(alice).user == "alice"
    clock.now += timedelta(minutes=1)
    with pytest.raises(Unauthenticated, match="token of user 'alice' expired"):
        auth.authenticate(alice)
    bob = auth.create_token("bob")
    assert auth.revoke(bob) and not auth.revoke(bob)
    with pytest.raises(Unauthenticated, match="unknown or revoked"):
        auth.authenticate(bob)
    with pytest.raises(InvalidArgument, match="positive"):
        auth.create_token("carol", ttl=timedelta(0))


def test_roles_per_repo(object_store) -> None:
    auth = AuthStore(object_store)
    assert auth.set_role("images", "alice", READER) == {"alice": READER}
    assert auth.set_role("images", "bob", OWNER) == {"alice": READER, "bob": OWNER}
    assert auth.set_role("images", "alice", WRITER)["alice"] == WRITER
    assert auth.set_role("images", "alice", "none") == {"bob": OWNER}
    assert auth.set_role("images", "nobody", "none") == {"bob": OWNER}  # nothing to take: unchanged
    assert auth.role_of("bob", "images") == OWNER and auth.role_of("bob", "other") is None
    auth.forget_repo("images")
    assert auth.roles("images") == {}
    with pytest.raises(InvalidArgument):
        auth.set_role("bad name", "alice", READER)


def test_concurrent_role_changes_all_land(tmp_path) -> None:
    from storage.local import LocalObjectStore

    auth = AuthStore(LocalObjectStore(tmp_path / "store"))
    users = [f"u{i}" for i in range(16)]
    threads = [threading.Thread(target=auth.set_role, args=("r", user, READER)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert auth.roles("r") == {user: READER for user in users}


def test_two_activations_racing_leave_one_admin(tmp_path) -> None:
    from storage.local import LocalObjectStore

    store = LocalObjectStore(tmp_path / "store")
    results: list[object] = []

    def activate(user: str) -> None:
        try:
            results.append(AuthStore(store).activate(user))
        except AlreadyExists as exc:
            results.append(exc)

    threads = [threading.Thread(target=activate, args=(f"admin{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tokens = [r for r in results if isinstance(r, str)]
    assert len(tokens) == 1
    state = AuthStore(store).state()
    assert state is not None and len(state.admins) == 1
    assert AuthStore(store).authenticate(tokens[0]).admin
