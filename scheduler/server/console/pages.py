"""The console's routes: pages (HTML) and the fragments their scripts poll (JSON {html, done}).

Pages:  /  /pipelines/{pipeline}  /jobs/{job}  /jobs/{job}/datums/{datum}  /repos/{repo}
        /repos/{repo}/commits/{commit}?path=  (+ /download?path=: the file's verified bytes)
Live:   /console/pipelines/{pipeline}/jobs  /console/jobs/{job}/datums
        /console/jobs/{job}/datums/{datum}/logs  (polled about once a second, no reload)
Static: /console/static/console.css, /console/static/console.js

A HerdError on a console route is an HTML page with its status and one-line message (naming
the repo, job, file...), never a traceback; the JSON API under /api/v1 keeps its JSON errors.
Templates autoescape: every name (repo, file, log line) is user input.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Callable, Coroutine
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from scheduler.job_records import DatumResult, JobInfo, JobStatus
from scheduler.records import PlannedDatum
from scheduler.server import routes_files
from scheduler.auth.rules import READER, Principal
from scheduler.server.app import Api, api
from scheduler.server.authn import TOKEN_COOKIE, principal
from scheduler.server.console import dag_svg
from scheduler.server.errors import status_of
from scheduler.spec import parse_spec
from storage.errors import HerdError, InvalidArgument, NotFound, Unauthenticated
from storage.paths import printable

HERE = Path(__file__).parent
STATIC = HERE / "static"
STATIC_FILES = {"console.css": "text/css", "console.js": "text/javascript"}
COMMIT_LIMIT = 200  # newest commits shown on a repo page
# Defence in depth behind autoescaping: scripts, styles and fetches from this server only, no
# inline script, no framing.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class ConsoleRoute(APIRoute):
    """A console route: HerdError and bad parameters become an HTML error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthenticated:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            except HerdError as exc:
                status, _ = status_of(exc)
                return error_page(request, status, exc.message)
            except RequestValidationError as exc:
                fields = ", ".join(str(e.get("loc", ("?",))[-1]) for e in exc.errors())
                return error_page(request, 422, f"invalid request: check {fields}")

        return run


router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
ApiDep = Annotated[Api, Depends(api)]
# Who is looking (the login form's cookie): once auth is active, a page needs a valid token and
# the reader role on what it shows; lists show only what the viewer may read.
Viewer = Annotated[Principal, Depends(principal)]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["ago"] = ago
    env.filters["when"] = when
    env.filters["duration"] = duration
    env.filters["size"] = human_size
    env.filters["q"] = lambda value: quote(str(value), safe="")
    env.filters["short"] = lambda value: str(value)[:12]
    return env


@functools.cache
def templates() -> Jinja2Templates:
    return Jinja2Templates(env=_environment())


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("viewer", getattr(request.state, "principal", None))
    return templates().TemplateResponse(request, name, context, status_code=status_code, headers=PAGE_HEADERS)


def fragment(name: str, done: bool, **context: Any) -> JSONResponse:
    """What a polling script receives: the part of the page to replace, and whether to stop."""
    html = templates().get_template(name).render(**context)
    return JSONResponse({"html": html, "done": done}, headers={"Cache-Control": "no-store"})


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return page(request, "error.html", status_code=status, title=f"Error {status}", message=message)


# ---- formatting (pure) -----------------------------------------------------------------------


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return ""
    seconds = int(((now or datetime.now(timezone.utc)) - moment).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return f"{max(seconds, 0)} seconds ago"


def duration(start: datetime | None, end: datetime | None = None) -> str:
    """`end - start` (up to now while running), e.g. `1.2s`, `3m04s`; blank before it started."""
    if start is None:
        return ""
    seconds = ((end or datetime.now(timezone.utc)) - start).total_seconds()
    if seconds < 60:
        return f"{max(seconds, 0):.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # unreachable


def progress(status: JobStatus) -> tuple[int, int]:
    """(done, total) of a job: processed and skipped datums count as done."""
    return status.data_processed + status.data_skipped, status.data_total


def content_disposition(path: str) -> str:
    """An attachment named after the file's last part: an ASCII fallback, and the exact name
    percent-encoded (RFC 6266), so no quote, newline or ';' of a file name reaches the header."""
    name = posixpath.basename(path.rstrip("/")) or "download"
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def breadcrumbs(path: str) -> list[tuple[str, str]]:
    """(label, path) of each directory above `path` and of `path` itself: `/a/b` ->
    [('/', '/'), ('a', '/a'), ('b', '/a/b')]."""
    crumbs = [("/", "/")]
    parts = [p for p in path.split("/") if p]
    for index, part in enumerate(parts):
        crumbs.append((part, "/" + "/".join(parts[: index + 1])))
    return crumbs


# ---- static ----------------------------------------------------------------------------------


@router.get("/console/static/{name}")
def static(name: str) -> FileResponse:
    if name not in STATIC_FILES:
        raise NotFound(f"static file '{printable(name)}' not found")
    return FileResponse(STATIC / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"})


# ---- the DAG ---------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def index(request: Request, a: ApiDep, who: Viewer) -> HTMLResponse:
    repos = a.pfs.list_repos()
    readable = a.readable(who, (r.name for r in repos))
    repos = [r for r in repos if r.name in readable]
    pipelines = [p for p in a.pipelines.list() if p.name in readable]  # its output repo bears its name
    last = {name: job for name, job in a.jobs.last_jobs().items() if name in readable}
    graph: dict[str, set[str]] = {}
    for info in pipelines:
        try:
            graph[info.name] = parse_spec(info.spec).input_repos()
        except HerdError:
            graph[info.name] = set()  # a spec this herd cannot read: the node stands alone
    for name in graph:  # an input the viewer may not read is not drawn
        graph[name] &= readable
    states = {name: status.state.value for name, (_, status) in last.items()}
    return page(request, "index.html", title="Pipelines", svg=dag_svg.draw(graph, [r.name for r in repos], states),
                repos=repos, pipelines=pipelines, last=last, graph=graph)


# ---- a pipeline and its jobs -----------------------------------------------------------------


def _job_rows(a: Api, pipeline: str) -> list[dict[str, Any]]:
    return [_job_row(info, status) for info, status in a.jobs.list(pipeline)]


def _job_row(info: JobInfo, status: JobStatus) -> dict[str, Any]:
    done, total = progress(status)
    return {"info": info, "status": status, "done": done, "total": total,
            "percent": 100 if total == 0 and status.state.terminal else (100 * done // total if total else 0)}


@router.get("/pipelines/{pipeline}", response_class=HTMLResponse)
def pipeline_page(request: Request, a: ApiDep, who: Viewer, pipeline: str) -> HTMLResponse:
    a.require(who, pipeline, READER)
    info = a.pipelines.inspect(pipeline)
    try:
        inputs = sorted(parse_spec(info.spec).input_repos())
    except HerdError:
        inputs = []
    return page(request, "pipeline.html", title=f"Pipeline {info.name}", pipeline=info, inputs=inputs,
                rows=_job_rows(a, info.name))


@router.get("/console/pipelines/{pipeline}/jobs")
def pipeline_jobs(a: ApiDep, who: Viewer, pipeline: str) -> JSONResponse:
    """The jobs table's body; a pipeline can always get a new job, so polling never stops."""
    a.require(who, pipeline, READER)
    return fragment("_jobs.html", False, rows=_job_rows(a, pipeline))


# ---- a job and its datums --------------------------------------------------------------------


def _datum_rows(rows: list[tuple[PlannedDatum, DatumResult | None]]) -> list[dict[str, Any]]:
    out = []
    for planned, result in rows:
        state = "SKIPPED" if planned.skip else (result.state.value if result else "STARTING")
        out.append({"datum": planned, "result": result, "state": state})
    return out


def _job_context(a: Api, who: Principal, job: str) -> dict[str, Any]:
    info, status = a.jobs.inspect(job)
    a.require(who, info.output_repo, READER)
    job_id, rows = a.jobs.datums(info.id)
    return {"job": _job_row(info, status), "datums": _datum_rows(rows)}


@router.get("/jobs/{job}", response_class=HTMLResponse)
def job_page(request: Request, a: ApiDep, who: Viewer, job: str) -> HTMLResponse:
    context = _job_context(a, who, job)
    info = context["job"]["info"]
    return page(request, "job.html", title=f"Job {info.id[:12]}", **context)


@router.get("/console/jobs/{job}/datums")
def job_datums(a: ApiDep, who: Viewer, job: str) -> JSONResponse:
    context = _job_context(a, who, job)
    return fragment("_job.html", context["job"]["status"].state.terminal, **context)


# ---- a datum's logs --------------------------------------------------------------------------


def _datum_context(a: Api, who: Principal, job: str, datum: str) -> tuple[dict[str, Any], bool]:
    a.require(who, a.jobs.inspect(job)[0].output_repo, READER)
    job_id, planned, result = a.jobs.datum(job, datum)
    scope = a.jobs.log_scope(None, job_id, planned.id)
    ended = a.jobs.log_scope_ended(scope)  # before the read: a finished job's last lines are in it
    lines = a.jobs.new_log_lines(scope)
    info, status = a.jobs.inspect(job_id)
    state = "SKIPPED" if planned.skip else (result.state.value if result else "STARTING")
    return {"info": info, "status": status, "datum": planned, "result": result, "state": state,
            "lines": lines}, ended


@router.get("/jobs/{job}/datums/{datum}", response_class=HTMLResponse)
def datum_page(request: Request, a: ApiDep, who: Viewer, job: str, datum: str) -> HTMLResponse:
    context, ended = _datum_context(a, who, job, datum)
    return page(request, "datum.html", title=f"Datum {context['datum'].id[:12]}", ended=ended, **context)


@router.get("/console/jobs/{job}/datums/{datum}/logs")
def datum_logs(a: ApiDep, who: Viewer, job: str, datum: str) -> JSONResponse:
    context, ended = _datum_context(a, who, job, datum)
    return fragment("_datum.html", ended, ended=ended, **context)


# ---- repos, commits and files ----------------------------------------------------------------


@router.get("/repos/{repo}", response_class=HTMLResponse)
def repo_page(request: Request, a: ApiDep, who: Viewer, repo: str) -> HTMLResponse:
    a.require(who, repo, READER)
    info = a.pfs.inspect_repo(repo)
    branches = a.pfs.list_branches(info.name)
    commits = a.pfs.list_commits(info.name, None, limit=COMMIT_LIMIT)
    return page(request, "repo.html", title=f"Repo {info.name}", repo=info, branches=branches, commits=commits,
                limit=COMMIT_LIMIT, is_output=info.name in {p.name for p in a.pipelines.list()})


@router.get("/repos/{repo}/commits/{commit}", response_class=HTMLResponse)
def commit_page(request: Request, a: ApiDep, who: Viewer, repo: str, commit: str, path: str = "/") -> HTMLResponse:
    a.require(who, repo, READER)
    found = a.pfs.inspect_commit(repo, commit)
    entries, problem = [], ""
    if found.finished is None:
        problem = "this commit is still open: its files can be browsed once it is finished"
    else:
        entries = a.pfs.list_file(repo, found.id, path)  # FileNotFound naming the path: the 404 page
    return page(request, "commit.html", title=f"Commit {repo}@{found.id[:12]}", repo=repo, commit=found,
                path=path, entries=entries, problem=problem, crumbs=breadcrumbs(path))


@router.get("/repos/{repo}/commits/{commit}/download")
def download(a: ApiDep, who: Viewer, repo: str, commit: str, path: str) -> StreamingResponse:
    """The file's bytes as an attachment, streamed from the verified reader (as get-file)."""
    a.require(who, repo, READER)
    if not path or path.endswith("/"):
        raise InvalidArgument(f"'path': '{printable(path)}' is not a file")
    response = routes_files.get_file(a, repo, commit, path)
    response.headers["Content-Disposition"] = content_disposition(path)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# ---- login -----------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return page(request, "login.html", title="Log in", next=_local(next), problem="")


@router.post("/login")
async def login(request: Request, a: ApiDep) -> Response:
    """Check the token from the form and keep it in an HttpOnly, SameSite=Strict cookie."""
    form = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    target = _local((form.get("next") or ["/"])[0])
    try:
        a.auth.authenticate(token or None)
    except Unauthenticated as exc:
        return page(request, "login.html", status_code=401, title="Log in", next=target, problem=exc.message)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


def _local(target: str) -> str:
    """Where a login may send the browser: a path on this server, never another site."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"
