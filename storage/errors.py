"""herd's one exception tree. Every message names the object a user must fix.

    HerdError                      exit code 1
    ├── NotFound                   exit code 2
    │   ├── RepoNotFound
    │   ├── BranchNotFound
    │   ├── CommitNotFound
    │   ├── FileNotFound
    │   ├── ObjectNotFound         (an object-store key; internal, rarely user-facing)
    │   ├── PipelineNotFound
    │   ├── JobNotFound
    │   └── DatumNotFound
    ├── AlreadyExists              exit code 3
    ├── InvalidArgument            exit code 4
    │   ├── InvalidName
    │   ├── InvalidPath
    │   ├── InvalidSpec
    │   └── InvalidGlob
    ├── Conflict                   exit code 5
    │   ├── CommitFinished
    │   ├── ConcurrentUpdateError
    │   └── PipelineCycle
    ├── Unavailable                exit code 6 (an outage: never read as "not found", never a datum try)
    │   ├── StorageUnavailable
    │   ├── BrokerUnavailable
    │   └── EngineUnavailable      (the Docker engine does not answer)
    ├── DataCorrupted              exit code 8 (stored bytes or records fail their hash or parse)
    ├── FormatTooNew               exit code 9 (the store was written by a newer herd: upgrade)
    ├── Unauthenticated            exit code 10 (auth is on: no token, or one unknown, revoked or expired)
    ├── PermissionDenied           exit code 11 (the token's user lacks the role a verb needs on a repo)
    ├── EgressFailed               exit code 1 (the egress URL refused a job's output: the job fails)
    └── UserCodeError              exit code 7
        ├── ImageNotFound
        ├── UnsafeOutput
        └── OutputQuotaExceeded    (a datum's /pfs/out is larger than HERD_OUTPUT_QUOTA)

Adapters (S3, Docker, Celery) translate their library's exceptions into these at their
boundary; nothing above an adapter catches botocore, docker or celery exceptions.
"""

from __future__ import annotations


class HerdError(Exception):
    """Base of every error herd reports to a user."""

    exit_code = 1
    code = "error"  # what a datum result records when this error fails it

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class MissingPackage(HerdError):
    """A verb needs an optional package that is not installed (herd[cluster]: celery, redis, docker)."""

    code = "missing_package"


class NotFound(HerdError):
    exit_code = 2


class RepoNotFound(NotFound):
    def __init__(self, repo: str) -> None:
        super().__init__(f"repo '{repo}' not found")
        self.repo = repo


class BranchNotFound(NotFound):
    def __init__(self, repo: str, branch: str) -> None:
        super().__init__(f"branch '{branch}' not found in repo '{repo}'")
        self.repo, self.branch = repo, branch


class CommitNotFound(NotFound):
    def __init__(self, repo: str, ref: str) -> None:
        super().__init__(f"commit '{ref}' not found in repo '{repo}'")
        self.repo, self.ref = repo, ref


class FileNotFound(NotFound):
    def __init__(self, repo: str, commit: str, path: str) -> None:
        super().__init__(f"file '{path}' not found in repo '{repo}' at commit '{commit}'")
        self.repo, self.commit, self.path = repo, commit, path


class ObjectNotFound(NotFound):
    def __init__(self, key: str, where: str = "") -> None:
        suffix = f" in {where}" if where else ""
        super().__init__(f"object '{key}' not found{suffix}")
        self.key = key


class PipelineNotFound(NotFound):
    def __init__(self, pipeline: str) -> None:
        super().__init__(f"pipeline '{pipeline}' not found")
        self.pipeline = pipeline


class JobNotFound(NotFound):
    def __init__(self, job: str) -> None:
        super().__init__(f"job '{job}' not found")
        self.job = job


class DatumNotFound(NotFound):
    def __init__(self, job: str, datum: str) -> None:
        super().__init__(f"datum '{datum}' not found in job '{job}'")
        self.job, self.datum = job, datum


class AlreadyExists(HerdError):
    exit_code = 3


class InvalidArgument(HerdError):
    exit_code = 4


class InvalidName(InvalidArgument):
    pass


class InvalidPath(InvalidArgument):
    pass


class InvalidSpec(InvalidArgument):
    pass


class InvalidGlob(InvalidArgument):
    pass


class Conflict(HerdError):
    exit_code = 5


class CommitFinished(Conflict):
    def __init__(self, repo: str, commit: str) -> None:
        super().__init__(f"commit '{commit}' in repo '{repo}' is finished and cannot be changed")
        self.repo, self.commit = repo, commit


class ConcurrentUpdateError(Conflict):
    pass


class PipelineCycle(Conflict):
    pass


class Unavailable(HerdError):
    """Something herd needs does not answer. Work waits and is retried; it never fails a datum's try."""

    exit_code = 6


class StorageUnavailable(Unavailable):
    code = "storage_unavailable"


class DataCorrupted(HerdError):
    """Stored bytes do not match their content hash, or a stored record does not parse.

    The message names what a user needs to find the damage: repo, commit, path and blob (or the
    object key of a record); `herd fsck` lists everything affected.
    """

    exit_code = 8
    code = "input_corrupt"


class FormatTooNew(HerdError):
    """The store's format marker (`_herd/format`) names a newer format than this herd reads."""

    exit_code = 9
    code = "format_too_new"


class Unauthenticated(HerdError):
    """Auth is active and the request carries no token, or one that is unknown, revoked or
    expired. The message never holds the token."""

    exit_code = 10


class PermissionDenied(HerdError):
    """The token's user lacks the role a verb needs; the message names the repo and the role."""

    exit_code = 11


class BrokerUnavailable(Unavailable):
    code = "broker_unavailable"


class EngineUnavailable(Unavailable):
    """The Docker engine does not answer (not the user's image or code)."""

    code = "engine_unavailable"


class EgressFailed(HerdError):
    """Copying a job's output to its `egress.URL` failed for a reason a retry does not fix
    (no bucket, not writable): the message names the URL."""

    code = "egress"


class UserCodeError(HerdError):
    exit_code = 7
    code = "user_code"


class ImageNotFound(UserCodeError):
    code = "image"

    def __init__(self, image: str, detail: str = "") -> None:
        extra = f": {detail}" if detail else ""
        super().__init__(f"image '{image}' not found{extra}")
        self.image = image


class SecretNotFound(UserCodeError):
    """A `transform.secrets` entry the worker does not hold (or cannot hand to user code); the
    message names the secret and key, never a value."""

    code = "secret"


class UnsafeOutput(UserCodeError):
    code = "unsafe_output"

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"unsafe output '{path}' in /pfs/out: {why}")
        self.path = path


class OutputQuotaExceeded(UserCodeError):
    """A datum's /pfs/out holds more bytes than HERD_OUTPUT_QUOTA allows; nothing of it is kept."""

    code = "output_quota"

    def __init__(self, quota: int, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"datum output in /pfs/out is over the output quota of {quota} bytes (HERD_OUTPUT_QUOTA){extra}"
        )
        self.quota = quota
