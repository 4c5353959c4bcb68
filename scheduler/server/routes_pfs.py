"""Routes of repos, branches and commits: one per method of storage.repos.Pfs the CLI calls.

A repo or branch name is a path segment (names hold only A-Z, a-z, 0-9, '_' and '-'); a ref
(`master^2`, an id prefix) and a file path travel as query parameters, so no character of
theirs is read as URL structure.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel

from scheduler.auth.rules import OWNER, Principal
from scheduler.server.app import Api, api
from scheduler.server.authn import principal
from storage.model import Branch, BranchRef, Commit, CommitRef, Repo, RepoInfo

router = APIRouter(tags=["pfs"])
ApiDep = Annotated[Api, Depends(api)]
Who = Annotated[Principal, Depends(principal)]


class NewRepo(BaseModel):
    name: str
    description: str = ""


class NewBranch(BaseModel):
    name: str
    head: str | None = None
    provenance: list[BranchRef] = []


class SetBranch(BaseModel):
    commit: str


class NewCommit(BaseModel):
    branch: str = "master"
    parent: str | None = None
    description: str = ""
    provenance: list[CommitRef] = []


class FinishCommit(BaseModel):
    description: str | None = None


class CommitsAfter(BaseModel):
    head: str | None
    commits: list[Commit]


# ---- repos -----------------------------------------------------------------------------------


@router.get("/repos")
def list_repos(a: ApiDep, who: Who) -> list[RepoInfo]:
    """The repos the user may read (all of them while auth is off)."""
    repos = a.pfs.list_repos()
    readable = a.readable(who, (info.name for info in repos))
    return [info for info in repos if info.name in readable]


@router.post("/repos", status_code=201)
def create_repo(a: ApiDep, who: Who, body: NewRepo) -> Repo:
    """A new repo; once auth is active its creator owns it."""
    repo = a.pfs.create_repo(body.name, description=body.description)
    if a.auth.active():
        a.auth.set_role(repo.name, who.user, OWNER)
    return repo


@router.get("/repos/{repo}")
def inspect_repo(a: ApiDep, repo: str) -> RepoInfo:
    return a.pfs.inspect_repo(repo)


@router.delete("/repos/{repo}")
def delete_repo(a: ApiDep, repo: str, force: bool = False) -> None:
    a.pfs.delete_repo(repo, force=force)
    a.auth.forget_repo(repo)  # a new repo of this name starts with no roles


# ---- branches --------------------------------------------------------------------------------


@router.get("/repos/{repo}/branches")
def list_branches(a: ApiDep, repo: str) -> list[Branch]:
    return a.pfs.list_branches(repo)


@router.post("/repos/{repo}/branches")
def create_branch(a: ApiDep, repo: str, body: NewBranch) -> Branch:
    branch = a.pfs.create_branch(repo, body.name, head=body.head, provenance=tuple(body.provenance))
    a.settle()
    return branch


@router.get("/repos/{repo}/branches/{branch}")
def inspect_branch(a: ApiDep, repo: str, branch: str) -> Branch:
    return a.pfs.inspect_branch(repo, branch)


@router.put("/repos/{repo}/branches/{branch}")
def set_branch(a: ApiDep, repo: str, branch: str, body: SetBranch) -> Branch:
    """pachctl 1.4's set-branch: the branch onto a commit (open or finished)."""
    moved = a.pfs.set_branch(repo, body.commit, branch)
    a.settle()
    return moved


@router.delete("/repos/{repo}/branches/{branch}")
def delete_branch(a: ApiDep, repo: str, branch: str, force: bool = False) -> None:
    a.pfs.delete_branch(repo, branch, force=force)


# ---- commits ---------------------------------------------------------------------------------


@router.get("/repos/{repo}/commits")
def list_commits(
    a: ApiDep, repo: str, branch: str | None = None, limit: Annotated[int | None, Query(ge=1)] = None,
    since: str | None = None,
) -> list[Commit]:
    return a.pfs.list_commits(repo, branch, limit=limit, since=since)


@router.post("/repos/{repo}/commits", status_code=201)
def start_commit(a: ApiDep, repo: str, body: NewCommit) -> Commit:
    return a.pfs.start_commit(repo, body.branch, parent=body.parent, description=body.description,
                              provenance=tuple(body.provenance))


@router.get("/repos/{repo}/commit")
def inspect_commit(a: ApiDep, repo: str, ref: str) -> Commit:
    return a.pfs.inspect_commit(repo, ref)


@router.post("/repos/{repo}/commit/finish")
def finish_commit(a: ApiDep, repo: str, ref: str, body: Annotated[FinishCommit, Body()] = FinishCommit()) -> Commit:
    commit = a.pfs.finish_commit(repo, ref, description=body.description)
    a.settle()
    return commit


@router.delete("/repos/{repo}/commit")
def delete_commit(a: ApiDep, repo: str, ref: str) -> Commit:
    return a.pfs.delete_commit(repo, ref)


@router.get("/repos/{repo}/branches/{branch}/commits-after")
def commits_after(a: ApiDep, repo: str, branch: str, seen: str | None = None) -> CommitsAfter:
    """subscribe-commit's poll: the branch head and the finished commits after `seen`."""
    head, commits = a.pfs.commits_after(repo, branch, seen)
    return CommitsAfter(head=head, commits=commits)
