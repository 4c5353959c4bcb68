"""Every API route has its entry in scheduler/server/permissions.py, and every entry a route."""

from __future__ import annotations

from scheduler.server.app import API_PREFIX, make_app
from scheduler.server.permissions import RULES

OPEN = {"/health"}  # no token: the compose healthcheck
OWN_CHECKS = "/auth/"  # auth's routes check admin and owner themselves (routes_auth.py)


def api_routes() -> set[tuple[str, str]]:
    """(METHOD, path below /api/v1) of every API route, from the app's OpenAPI document."""
    found = set()
    for path, operations in make_app(None).openapi()["paths"].items():
        if not path.startswith(API_PREFIX):
            continue
        path = path.removeprefix(API_PREFIX)
        if path in OPEN or path.startswith(OWN_CHECKS):
            continue
        found |= {(method.upper(), path) for method in operations}
    return found


def test_every_api_route_has_a_rule_and_every_rule_a_route() -> None:
    routes = api_routes()
    assert routes - set(RULES) == set(), "add these routes to scheduler/server/permissions.py"
    assert set(RULES) - routes == set(), "these rules name no route"
