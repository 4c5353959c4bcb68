"""Routes of auth: activate, who am I, tokens, and the roles on a repo (scheduler/auth/)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from scheduler.auth.rules import OWNER, READER, Principal, require, require_admin
from scheduler.server.app import Api, api
from scheduler.server.authn import principal
from storage.errors import Conflict

router = APIRouter(tags=["auth"])
ApiDep = Annotated[Api, Depends(api)]
Who = Annotated[Principal, Depends(principal)]


class Activate(BaseModel):
    user: str = "admin"


class NewToken(BaseModel):
    user: str
    ttl_seconds: float | None = Field(None, gt=0, le=10 * 365 * 24 * 3600)


class TokenValue(BaseModel):
    token: str = Field(max_length=1000)


class SetRole(BaseModel):
    user: str
    role: str


class Issued(BaseModel):
    user: str
    token: str
    expires: datetime | None = None


class WhoAmI(BaseModel):
    user: str
    admin: bool
    active: bool


class Roles(BaseModel):
    repo: str
    roles: dict[str, str]


def _active(a: Api) -> None:
    if not a.auth.active():
        raise Conflict("auth is not active on this server: herd auth activate turns it on")


@router.post("/auth/activate", status_code=201)
def activate(a: ApiDep, body: Activate) -> Issued:
    """Turn auth on; the first admin's token, shown once. Needs no token (auth is off until then)."""
    return Issued(user=body.user, token=a.auth.activate(body.user))


@router.get("/auth/whoami")
def whoami(a: ApiDep, who: Who) -> WhoAmI:
    return WhoAmI(user=who.user, admin=who.admin, active=a.auth.active())


@router.post("/auth/tokens", status_code=201)
def create_token(a: ApiDep, who: Who, body: NewToken) -> Issued:
    _active(a)
    require_admin(who, "create tokens")
    ttl = timedelta(seconds=body.ttl_seconds) if body.ttl_seconds else None
    token = a.auth.create_token(body.user, ttl)
    record = a.auth.authenticate(token)
    expires = a.auth.clock() + ttl if ttl else None
    return Issued(user=record.user, token=token, expires=expires)


@router.post("/auth/tokens/revoke")
def revoke_token(a: ApiDep, who: Who, body: TokenValue) -> dict[str, bool]:
    """Revoke a token: an admin any, a user their own. The token travels in the body, never the URL."""
    _active(a)
    if not who.admin and a.auth.token_user(body.token) != who.user:
        require_admin(who, "revoke another user's token")
    return {"revoked": a.auth.revoke(body.token)}


@router.get("/auth/roles/{repo}")
def get_roles(a: ApiDep, who: Who, repo: str) -> Roles:
    a.pfs.inspect_repo(repo)  # RepoNotFound naming it
    require(who, repo, READER, a.auth.role_of(who.user, repo))
    return Roles(repo=repo, roles=a.auth.roles(repo))


@router.put("/auth/roles/{repo}")
def set_role(a: ApiDep, who: Who, repo: str, body: SetRole) -> Roles:
    _active(a)
    a.pfs.inspect_repo(repo)
    require(who, repo, OWNER, a.auth.role_of(who.user, repo))
    return Roles(repo=repo, roles=a.auth.set_role(repo, body.user, body.role))
