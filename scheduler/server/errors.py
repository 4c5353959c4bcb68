"""HerdError -> an HTTP status and a JSON body with the CLI's category, message and exit code. Pure.

The body is what scheduler/remote/client.py turns back into the same exception, so a verb run
through the server fails with the line and exit code it fails with locally.
"""

from __future__ import annotations

from typing import Any

from storage.errors import (
    AlreadyExists, Conflict, DataCorrupted, FormatTooNew, HerdError, InvalidArgument, MissingPackage, NotFound,
    PermissionDenied, Unauthenticated, Unavailable,
)

# Most specific first: a class takes the status of the first entry it is an instance of.
STATUSES: tuple[tuple[type[HerdError], int, str], ...] = (
    (Unauthenticated, 401, "unauthenticated"),
    (PermissionDenied, 403, "permission_denied"),
    (NotFound, 404, "not_found"),
    (AlreadyExists, 409, "already_exists"),
    (Conflict, 409, "conflict"),
    (InvalidArgument, 422, "invalid_argument"),
    (Unavailable, 503, "unavailable"),
    (MissingPackage, 501, "missing_package"),
    (DataCorrupted, 500, "data_corrupted"),
    (FormatTooNew, 500, "format_too_new"),
)


def status_of(exc: HerdError) -> tuple[int, str]:
    """The HTTP status and category of an error: 401 no valid token, 403 a role missing, 404 not
    found, 409 conflict, 422 bad input, 503 outage; anything else herd reports is a 500 of
    category `error`."""
    for cls, status, category in STATUSES:
        if isinstance(exc, cls):
            return status, category
    return 500, "error"


def error_body(exc: HerdError) -> dict[str, Any]:
    _, category = status_of(exc)
    return {"error": {"type": type(exc).__name__, "category": category, "message": exc.message,
                      "exit_code": exc.exit_code}}


def bad_request_body(problems: list[tuple[str, str]]) -> dict[str, Any]:
    """A request the API refused before any herd code ran (a missing or malformed parameter):
    one InvalidArgument naming each field."""
    message = "; ".join(f"{where}: {what}" for where, what in problems) or "invalid request"
    return {"error": {"type": "InvalidArgument", "category": "invalid_argument", "message": message,
                      "exit_code": InvalidArgument.exit_code}}
