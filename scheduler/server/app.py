"""The ASGI app of `herd serve`: the routers, HerdError as JSON, and the one Python API they share.

Routes are plain (sync) functions: FastAPI runs them on its thread pool, and they call the same
Python API the CLI calls (scheduler/cli/wiring.py's Herd). On the embedded default (no
HERD_BROKER) a route that changes data runs the jobs it caused before it answers, as the CLI
verb does; one run at a time, since two would race for the same jobs.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from scheduler.server.errors import bad_request_body, error_body, status_of
from scheduler.version import herd_version
from storage.errors import HerdError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from scheduler.auth.rules import Principal
    from scheduler.auth.store import AuthStore
    from scheduler.pipelines import Pipelines
    from scheduler.queries import JobQueries
    from storage.repos import Pfs

API_PREFIX = "/api/v1"


class Api:
    """What every route reaches: the Python API, and `settle` after a change (embedded default)."""

    def __init__(self, herd: Any) -> None:
        self.herd = herd
        self._settling = threading.Lock()

    @property
    def pfs(self) -> Pfs:
        return self.herd.pfs  # type: ignore[no-any-return]

    @property
    def pipelines(self) -> Pipelines:
        return self.herd.pipelines  # type: ignore[no-any-return]

    @property
    def jobs(self) -> JobQueries:
        return self.herd.jobs  # type: ignore[no-any-return]

    @cached_property
    def auth(self) -> AuthStore:
        """Tokens and roles (scheduler/auth/), in the same storage as the data."""
        from scheduler.auth.store import AuthStore

        return AuthStore(self.pfs.objects)

    def require(self, who: Principal, repo: str, role: str) -> None:
        """PermissionDenied unless `who` holds `role` on `repo` (or auth is off, or an admin)."""
        from scheduler.auth.rules import require

        if not who.admin:
            require(who, repo, role, self.auth.role_of(who.user, repo))

    def readable(self, who: Principal, repos: Iterable[str]) -> set[str]:
        """The repos of `repos` that `who` may read (all of them while auth is off, or an admin)."""
        from scheduler.auth.rules import READER, satisfies

        names = set(repos)
        if who.admin:
            return names
        return {repo for repo in names if satisfies(self.auth.role_of(who.user, repo), READER)}

    def settle(self) -> None:
        """Run the jobs owed now (no-op when a scheduler service owns them: HERD_BROKER)."""
        with self._settling:
            self.herd.settle()


def api(request: Request) -> Api:
    """The route dependency: the app's one Api."""
    return request.app.state.api  # type: ignore[no-any-return]


def make_app(herd: Any) -> FastAPI:
    """The app over `herd` (a wiring.Herd, or anything with its pfs/pipelines/jobs/settle)."""
    from scheduler.server import routes_files, routes_pfs

    app = FastAPI(
        title="herd", version=herd_version(),
        description="herd's HTTP API: repos, commits, branches, files, pipelines, jobs, datums and logs. "
                    "Errors are JSON: {\"error\": {\"type\", \"category\", \"message\", \"exit_code\"}}.",
    )
    app.state.api = Api(herd)
    app.add_exception_handler(HerdError, _herd_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    from scheduler.server import routes_auth, routes_pps
    from scheduler.server.authn import authorize

    # Once auth is active every API route needs a valid token (401 otherwise) and the role its
    # entry in scheduler/server/permissions.py names (403 otherwise).
    signed_in = [Depends(authorize)]
    app.include_router(routes_pfs.router, prefix=API_PREFIX, dependencies=signed_in)
    app.include_router(routes_files.router, prefix=API_PREFIX, dependencies=signed_in)
    app.include_router(routes_pps.router, prefix=API_PREFIX, dependencies=signed_in)
    app.include_router(routes_auth.router, prefix=API_PREFIX)
    from scheduler.server import console

    app.include_router(console.router)  # the web console: HTML pages at `/` (console/pages.py)

    @app.get(API_PREFIX + "/health", tags=["server"])
    def health() -> dict[str, str]:
        """Answers while the server runs (the compose healthcheck); touches no storage."""
        return {"status": "ok", "version": herd_version()}

    return app


async def _herd_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HerdError)
    status, _ = status_of(exc)
    return JSONResponse(error_body(exc), status_code=status)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        where = " ".join(str(part) for part in error.get("loc", ()) if part not in ("body",)) or "request"
        problems.append((f"'{where}'", str(error.get("msg", "invalid"))))
    return JSONResponse(bad_request_body(problems), status_code=422)
