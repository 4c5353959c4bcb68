"""Who a request acts as: its token (`Authorization: Bearer ...`, or the console's cookie),
checked against the auth records on every request. Nothing about a token is logged or echoed."""

from __future__ import annotations

from fastapi import Request

from scheduler.auth.rules import Principal, require
from scheduler.server.permissions import RULES, Needs
from storage.errors import InvalidArgument, PermissionDenied

TOKEN_COOKIE = "herd_token"  # the console's login form sets it (HttpOnly, SameSite=Strict)


def token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(TOKEN_COOKIE) or None


def principal(request: Request) -> Principal:
    """The request's principal (an admin while auth is off); Unauthenticated when auth is on and
    the token is missing, unknown, revoked or expired. Looked up once per request."""
    found = getattr(request.state, "principal", None)
    if isinstance(found, Principal):
        return found
    who = request.app.state.api.auth.authenticate(token_of(request))
    request.state.principal = who
    return who  # type: ignore[no-any-return]


def authorize(request: Request) -> Principal:
    """The request's principal, allowed by the route's entry in RULES (scheduler/server/
    permissions.py): the role it needs on the repo a parameter names. A route missing from the
    table is refused (fail closed) once auth is active."""
    who = principal(request)
    api = request.app.state.api
    if who.admin:
        return who
    route = request.scope.get("route")
    template = getattr(route, "path", "")
    api_prefix = "/api/v1"
    rule = RULES.get((request.method, template.removeprefix(api_prefix)))
    if rule is None:
        raise PermissionDenied(f"{request.method} {template} is not open to user '{who.user}'")
    if isinstance(rule, Needs):
        repo = _repo_named(api, request, rule.source)
        require(who, repo, rule.role, api.auth.role_of(who.user, repo))
    return who


def _repo_named(api: object, request: Request, source: str) -> str:
    where, _, name = source.partition(":")
    value = (request.path_params if where == "path" else request.query_params).get(name)
    if not value:
        raise InvalidArgument(f"'{name}': field required")
    if name == "job":
        info, _ = api.jobs.inspect(value)  # type: ignore[attr-defined]
        return str(info.output_repo)
    return str(value)  # a repo, or a pipeline (its output repo bears its name)
