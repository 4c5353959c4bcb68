"""The role each API route needs, in one table, checked before the route runs.

A route needs a role on one repo, found from one of its parameters: the repo itself, a pipeline
(its output repo bears its name), or a job (its pipeline's output repo). Routes whose repos come
from their body or whose answer is filtered per repo (lists, create-pipeline, flush, logs,
copy-file's source) say FILTERED or BY_ROUTE here and check in their own code, through
`Api.require`. tests/server/test_permissions.py fails when a route of the app has no entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.auth.rules import OWNER, READER, WRITER


@dataclass(frozen=True)
class Needs:
    """`role` on the repo named by the request's `source` (`path:repo`, `path:pipeline`, `query:job`)."""

    role: str
    source: str


FILTERED = "filtered"  # any signed-in user; the route shows only what the user may read
BY_ROUTE = "by-route"  # any signed-in user; the route checks the repos its body or query names
SIGNED_IN = "signed-in"  # any signed-in user, nothing more (create-repo: the creator owns it)

Rule = Needs | str


def _repo(role: str) -> Needs:
    return Needs(role, "path:repo")


def _pipeline(role: str) -> Needs:
    return Needs(role, "path:pipeline")


def _job(role: str) -> Needs:
    return Needs(role, "query:job")


RULES: dict[tuple[str, str], Rule] = {
    # repos
    ("GET", "/repos"): FILTERED,
    ("POST", "/repos"): SIGNED_IN,
    ("GET", "/repos/{repo}"): _repo(READER),
    ("DELETE", "/repos/{repo}"): _repo(OWNER),
    # branches
    ("GET", "/repos/{repo}/branches"): _repo(READER),
    ("POST", "/repos/{repo}/branches"): _repo(WRITER),
    ("GET", "/repos/{repo}/branches/{branch}"): _repo(READER),
    ("PUT", "/repos/{repo}/branches/{branch}"): _repo(WRITER),
    ("DELETE", "/repos/{repo}/branches/{branch}"): _repo(WRITER),
    ("GET", "/repos/{repo}/branches/{branch}/commits-after"): _repo(READER),
    # commits
    ("GET", "/repos/{repo}/commits"): _repo(READER),
    ("POST", "/repos/{repo}/commits"): _repo(WRITER),
    ("GET", "/repos/{repo}/commit"): _repo(READER),
    ("POST", "/repos/{repo}/commit/finish"): _repo(WRITER),
    ("DELETE", "/repos/{repo}/commit"): _repo(WRITER),
    # files
    ("PUT", "/repos/{repo}/file"): _repo(WRITER),
    ("POST", "/repos/{repo}/files"): _repo(WRITER),
    ("POST", "/repos/{repo}/files/split"): _repo(WRITER),
    ("GET", "/repos/{repo}/file"): _repo(READER),
    ("GET", "/repos/{repo}/files"): _repo(READER),
    ("GET", "/repos/{repo}/file/info"): _repo(READER),
    ("GET", "/repos/{repo}/file/walk"): _repo(READER),
    ("GET", "/repos/{repo}/glob"): _repo(READER),
    ("GET", "/repos/{repo}/diff"): _repo(READER),
    ("GET", "/repos/{repo}/diff-paths"): BY_ROUTE,
    ("DELETE", "/repos/{repo}/file"): _repo(WRITER),
    ("POST", "/repos/{repo}/copy-file"): BY_ROUTE,
    # pipelines
    ("GET", "/pipelines"): FILTERED,
    ("POST", "/pipelines"): BY_ROUTE,
    ("GET", "/pipelines/{pipeline}"): _pipeline(READER),
    ("DELETE", "/pipelines/{pipeline}"): _pipeline(OWNER),
    ("POST", "/pipelines/{pipeline}/stop"): _pipeline(WRITER),
    ("POST", "/pipelines/{pipeline}/start"): _pipeline(WRITER),
    # jobs, datums, logs
    ("GET", "/jobs"): FILTERED,
    ("GET", "/jobs/last"): FILTERED,
    ("GET", "/job"): _job(READER),
    ("GET", "/job/image"): _job(READER),
    ("GET", "/job/wait"): _job(READER),
    ("POST", "/job/stop"): _job(WRITER),
    ("GET", "/job/datums"): _job(READER),
    ("GET", "/job/datum"): _job(READER),
    ("POST", "/job/datum/restart"): _job(WRITER),
    ("GET", "/logs/scope"): BY_ROUTE,
    ("GET", "/logs"): BY_ROUTE,
    ("GET", "/flush"): BY_ROUTE,
    # status, version: the server's storage and broker, only readable pipelines' running jobs
    ("GET", "/status"): FILTERED,
}
