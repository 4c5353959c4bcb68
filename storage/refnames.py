"""What a ref names: its syntax (`B`, `B^`, `B^N`, `B~N`, `B^^`, `B.N`, ids and id prefixes),
the commit it resolves to, and where a write to it lands (an open commit or a branch).

Parsing is pure, so every syntax rule is tested without an object store; resolving reads
through `Commits`, which repairs what a crash left half done on the branches it names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from storage.errors import BranchNotFound, CommitFinished, CommitNotFound, InvalidArgument
from storage.model import Commit
from storage.paths import is_valid_name

if TYPE_CHECKING:  # Commits resolves refs through this module at run time
    from storage.commits import Commits

ID_LEN = 32  # a commit id is uuid4 hex
MIN_PREFIX = 6  # the shortest id prefix a ref may use

# `\Z`, not `$`: `$` also matches before a trailing newline, so 'master\n' would name master.
_REF_RE = re.compile(r"^(?P<base>[A-Za-z0-9_-]+)(?P<suffix>[\^~0-9]*)(?:\.(?P<nth>[0-9]+))?\Z")
_STEP_RE = re.compile(r"([\^~])([0-9]*)")
HEX_RE = re.compile(r"^[0-9a-f]+\Z")


@dataclass(frozen=True)
class ParsedRef:
    """A ref split into its base (branch or commit id), steps back, and optional N-th commit."""

    base: str
    back: int = 0
    nth: int | None = None


def parse_ref(ref: object) -> ParsedRef:
    """Parse `B`, `B^`, `B^N`, `B~N`, `B^^` (= `B~2`) and `B.N`; mixing `^` and `~` is refused."""
    if not isinstance(ref, str) or not (match := _REF_RE.match(ref)):
        raise InvalidArgument(
            f"invalid ref '{ref}': expected a branch or commit id, optionally with ^, ^N, ~N or .N"
        )
    suffix, nth = match["suffix"], match["nth"]
    if "^" in suffix and "~" in suffix:
        raise InvalidArgument(f"invalid ref '{ref}': '^' and '~' cannot be mixed")
    if suffix and nth is not None:
        raise InvalidArgument(f"invalid ref '{ref}': '.N' cannot follow '^' or '~'")
    steps = _STEP_RE.findall(suffix)
    if "".join(op + digits for op, digits in steps) != suffix:
        raise InvalidArgument(f"invalid ref '{ref}': bad ancestry suffix '{suffix}'")
    back = sum(int(digits) if digits else 1 for _, digits in steps)
    if nth is not None and int(nth) < 1:
        raise InvalidArgument(f"invalid ref '{ref}': '.N' counts from 1 (the oldest commit)")
    return ParsedRef(match["base"], back, int(nth) if nth is not None else None)


# ---- what a ref names in a repo: a commit to read, or where a write lands ----------------


def is_full_id(text: str) -> bool:
    """Whether `text` is spelled as a whole commit id (uuid4 hex)."""
    return len(text) == ID_LEN and HEX_RE.match(text) is not None


def is_id_prefix(text: str) -> bool:
    """Whether `text` may be a commit id or a prefix long enough to look one up."""
    return len(text) >= MIN_PREFIX and HEX_RE.match(text) is not None


def no_commits(repo: str, branch: str) -> CommitNotFound:
    """CommitNotFound for a branch that exists but has no head yet."""
    error = CommitNotFound(repo, branch)
    error.message = f"branch '{branch}' in repo '{repo}' has no commits"
    error.args = (error.message,)
    return error


def resolve(commits: Commits, repo: str, ref: str) -> Commit:
    """A ref (branch, id, unique id prefix; `^`, `^N`, `~N`, `.N`) to its Commit."""
    parsed = parse_ref(ref)
    commits.require_repo(repo)
    commit = _resolve_base(commits, repo, parsed.base)
    if parsed.nth is not None:
        chain = list(commits.history(commit))
        if parsed.nth > len(chain):
            raise CommitNotFound(repo, ref)
        return chain[-parsed.nth]
    for _ in range(parsed.back):
        if commit.parent is None:
            raise CommitNotFound(repo, ref)
        commit = commits.finished_commit(repo, commit.parent)
    return commit


def _resolve_base(commits: Commits, repo: str, base: str) -> Commit:
    if is_valid_name(base):
        branch = commits.settle_branch(repo, base)
        if branch is not None:
            if branch.head is None:
                raise no_commits(repo, base)
            return commits.finished_commit(repo, branch.head)  # a head is always finished
    if is_id_prefix(base):
        return commits.get_commit(repo, commits.match_id(repo, base))
    raise BranchNotFound(repo, base)


@dataclass(frozen=True)
class Target:
    """Where a write lands: an open commit (by id) or a branch (a commit by itself).

    `head`: the branch's head as write_target read it (None: no branch yet) when `read`, so the
    dry run before an upload reads the branch no second time (a GET each on S3). Only a dry
    run uses it: the write reads the branch again in its compare-and-set."""

    kind: Literal["open", "branch"]
    name: str
    head: str | None = field(default=None, compare=False)
    read: bool = field(default=False, compare=False)


def write_target(commits: Commits, repo: str, ref: str) -> Target:
    """Where a write to `ref` goes; CommitFinished for a finished commit."""
    parsed = parse_ref(ref)
    commits.require_repo(repo)
    if ref != parsed.base:  # an ancestry suffix (even ^0) names a commit, not the branch
        raise CommitFinished(repo, resolve(commits, repo, ref).id)
    base = parsed.base
    if is_full_id(base):  # a full id: skip the branch lookup
        found = _commit_target(commits, repo, base)
        if found is not None:
            return found
    read = is_valid_name(base)
    if read:
        branch, pending = commits.branch_state(repo, base)  # settles what a crash left half done
        if branch is not None:
            if pending is not None:
                return Target("open", pending.commit.id)
            return Target("branch", base, branch.head, read=True)
    if is_full_id(base):
        raise CommitNotFound(repo, base)
    if is_id_prefix(base):
        found = _commit_target(commits, repo, base)
        if found is not None:
            return found
    return Target("branch", base, None, read=read)  # a new branch, as pachctl put-file creates one


def _commit_target(commits: Commits, repo: str, prefix: str) -> Target | None:
    """The open commit an id (prefix) names; CommitFinished if finished, None if unknown."""
    try:
        commit = commits.get_commit(repo, commits.match_id(repo, prefix))
    except CommitNotFound:
        return None
    if commit.finished is not None:
        raise CommitFinished(repo, commit.id)
    return Target("open", commit.id)
