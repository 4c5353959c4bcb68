"""Who may do what: roles per repo, admins, and the checks. Pure.

Roles rise reader < writer < owner, as Pachyderm's repo roles do: a reader lists, gets,
inspects and reads logs; a writer also puts and deletes files, starts and finishes commits and
moves branches; an owner also deletes the repo and sets its roles. Admins do everything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from storage.errors import InvalidArgument, PermissionDenied

READER, WRITER, OWNER = "reader", "writer", "owner"
ROLES = (READER, WRITER, OWNER)  # in rising order
NO_ROLE = "none"  # set-role's word for taking a user's role away
USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,127}")  # only ever used with fullmatch
USER_RULE = "1-128 characters from A-Z, a-z, 0-9 and '_.@:+-', starting with a letter or digit"
ANONYMOUS = "anonymous"  # every request while auth is off: an admin, as without auth at all


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a user, and whether that user is an admin."""

    user: str
    admin: bool = False


NOBODY_CHECKS = Principal(ANONYMOUS, admin=True)


def validate_user(user: object) -> str:
    if not isinstance(user, str) or not USER_RE.fullmatch(user):
        shown = user if isinstance(user, str) else type(user).__name__
        raise InvalidArgument(f"invalid user name '{shown[:130]!s}': use {USER_RULE}")
    return user


def validate_role(role: object, allow_none: bool = False) -> str:
    allowed = (*ROLES, NO_ROLE) if allow_none else ROLES
    if role not in allowed:
        raise InvalidArgument(f"invalid role '{str(role)[:40]}': expected one of {', '.join(allowed)}")
    return str(role)


def satisfies(held: str | None, needed: str) -> bool:
    """Whether a role held on a repo covers the role a verb needs there."""
    return held in ROLES and ROLES.index(held) >= ROLES.index(needed)


def require(principal: Principal, repo: str, needed: str, held: str | None) -> None:
    """PermissionDenied naming the user, the repo and the role needed, unless allowed."""
    if principal.admin or satisfies(held, needed):
        return
    raise PermissionDenied(
        f"user '{principal.user}' needs the {needed} role on repo '{repo}' "
        f"(has {held or 'no role'}): an owner of the repo or an admin can grant it with herd auth set-role")


def require_admin(principal: Principal, what: str) -> None:
    if not principal.admin:
        raise PermissionDenied(f"user '{principal.user}' is not an admin: only an admin can {what}")
