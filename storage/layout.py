"""The storage layout: every object key herd reads or writes is spelled here, and only here.

    repos/<repo>/repo.json                      Repo, create-only
    repos/<repo>/branches/<branch>              Branch head, compare-and-set
    repos/<repo>/commits/<id>                   finished Commit, create-only
    repos/<repo>/open/<id>                      OpenCommit, compare-and-set, until it lands
    manifests/<sha256>                          Manifest, content-addressed
    blobs/<h[:2]>/<h>                           a chunk's bytes, content-addressed (SHA-256 hex)
    packs/<h[:2]>/<h>                           small chunks back to back, content-addressed (format 2)
    tmp/blobs/<uuid>                            a big upload before its hash is known, then renamed
    pipelines/<name>/info                       PipelineInfo, compare-and-set
    pipelines/<name>/versions/<n>               the spec of each version, create-only
    pipelines/<name>/jobs/<created-ns>_<job>    a marker per job, in creation order
    pipelines/<name>/index/<job>                DatumIndex after the job
    jobs/<job>/info                             JobInfo, create-only
    jobs/<job>/plan                             JobPlan, create-only, before anything is enqueued
    jobs/<job>/status                           JobStatus, compare-and-set
    jobs/<job>/image                            the image id every datum of the job runs, create-only
    jobs/<job>/results/<datum>                  DatumResult, create-only: the first one wins (may carry a tiny output's bytes)
    jobs/<job>/attempts/<datum>/<n>             attempt n's claim, then its holder's lease renewals
    jobs/<job>/attempts/<datum>/<n>.given_back  create-only: attempt n met an outage (no try used)
    jobs/<job>/attempts/<datum>/<n>.restarted   create-only: restart-datum ended attempt n
    jobs/<job>/logs/<datum>/<n>                 attempt n's summary (and, before live logs, its stdout/stderr)
    jobs/<job>/logs/<datum>/<n>.<seq>           create-only: a segment of attempt n's lines (JSON lines)
    _herd/conditional-writes                    S3: the server passed the conditional-write probe
    _herd/probe/<uuid>                          S3: a probe key (deleted after the probe)
    _herd/gc/<uuid>                             a garbage-collection run's mark
    _herd/format                                the storage format version, create-only, at first open
    auth/state                                  AuthState (`herd auth activate`, the admins), compare-and-set
    auth/tokens/<sha256 of token>               TokenRecord (user, expiry), create-only; deleted to revoke
    auth/roles/<repo>                           RepoRoles (user -> reader/writer/owner), compare-and-set

Stored data outlives the code: a key's spelling never changes. Pure functions and constants
only; the scheduler's keys (pipelines/, jobs/) live here too, as storage is the lowest
package. `_herd/` keys are the stores' own: listings hide them unless asked for.
"""

from __future__ import annotations

import re

from storage.errors import InvalidArgument
from storage.paths import validate_name

RESERVED_PREFIX = "_herd/"
CONDITIONAL_WRITES_KEY = f"{RESERVED_PREFIX}conditional-writes"
PROBE_PREFIX = f"{RESERVED_PREFIX}probe/"
GC_MARK_PREFIX = f"{RESERVED_PREFIX}gc/"
FORMAT_KEY = f"{RESERVED_PREFIX}format"
# The layout version this code writes and reads. Raise it when a change would make an older herd
# misread the store: an older herd then refuses the store instead of corrupting it.
# 1: loose blobs only. 2: manifests may place small chunks in packs (FileEntry.packed); a
# format-1 store is raised to 2 by the first pack written into it (storage.packs). 3: a datum
# result may carry its small outputs' bytes (DatumResult.inline), which the job's finish puts
# into packs; a store is raised to 3 by the first such result (an older scheduler would commit
# entries that name blobs never stored). 4: a manifest, a job's plan or a datum index may be a
# layer on an earlier one (ManifestLayer; JobPlan.base, DatumIndex.base), which an older herd
# would read as the whole; a store is raised to 4 by the first layer written into it.
STORAGE_FORMAT = 4
PACKS_FORMAT = 2
INLINE_FORMAT = 3
LAYERS_FORMAT = 4

REPOS_PREFIX = "repos/"
MANIFEST_PREFIX = "manifests/"
BLOB_PREFIX = "blobs/"
PACK_PREFIX = "packs/"
TEMP_PREFIX = "tmp/"  # everything below is a temp key: garbage once it is old enough
TEMP_BLOB_PREFIX = f"{TEMP_PREFIX}blobs/"
PIPELINES_PREFIX = "pipelines/"
JOBS_PREFIX = "jobs/"
AUTH_PREFIX = "auth/"  # `herd serve`'s tokens and roles: never garbage (gc sweeps other prefixes)
AUTH_STATE_KEY = f"{AUTH_PREFIX}state"

REPO_RECORD = "repo.json"
GIVEN_BACK = "given_back"  # attempt marker: it met an outage and gave its batch back
RESTARTED = "restarted"  # attempt marker: restart-datum ended it

_HASH_RE = re.compile(r"[0-9a-f]{64}")  # only ever used with fullmatch


# ---- repos ----------------------------------------------------------------------------------


def repo_prefix(repo: str) -> str:
    return f"{REPOS_PREFIX}{repo}/"


def repo_key(repo: str) -> str:
    return f"{repo_prefix(repo)}{REPO_RECORD}"


def repo_of(key: str) -> str | None:
    """`repos/<repo>/...` → `<repo>`; None for a key outside repos/."""
    if not key.startswith(REPOS_PREFIX):
        return None
    return key[len(REPOS_PREFIX):].partition("/")[0]


def branches_prefix(repo: str) -> str:
    return f"{repo_prefix(repo)}branches/"


def branch_key(repo: str, name: str) -> str:
    """Object key of a branch head; InvalidName for a name reads would refuse.

    Every read and write of a branch goes through here, so no path (put-file creating a
    branch, start-commit, create-branch, pipeline outputs) can store a branch nobody can reach.
    """
    validate_name(repo, "repo")
    validate_name(name, "branch")
    return f"{branches_prefix(repo)}{name}"


def commits_prefix(repo: str) -> str:
    return f"{repo_prefix(repo)}commits/"


def commit_key(repo: str, cid: str) -> str:
    return f"{commits_prefix(repo)}{cid}"


def open_prefix(repo: str) -> str:
    return f"{repo_prefix(repo)}open/"


def open_key(repo: str, cid: str) -> str:
    return f"{open_prefix(repo)}{cid}"


# ---- content-addressed: manifests and blobs ------------------------------------------------


def manifest_key(mid: str) -> str:
    return f"{MANIFEST_PREFIX}{mid}"


def manifest_id_of(key: str) -> str | None:
    """`manifests/<id>` → `<id>`; None for a key outside manifests/."""
    return key[len(MANIFEST_PREFIX):] if key.startswith(MANIFEST_PREFIX) else None


def _fanned_key(prefix: str, kind: str, digest: str) -> str:
    """`<prefix><first two hex digits>/<digest>`, after checking `digest` is a SHA-256 hex digest."""
    if not _HASH_RE.fullmatch(digest):
        raise InvalidArgument(f"invalid {kind} id '{digest}': expected 64 lowercase hex digits")
    return f"{prefix}{digest[:2]}/{digest}"


def _fanned_id(prefix: str, key: str) -> str | None:
    """The digest of a `<prefix>ab/abcd...` key; None for anything else."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] + "/" == prefix and parts[2][:2] == parts[1]:
        return parts[2]
    return None


def blob_key(digest: str) -> str:
    """The object key of a blob id, after checking it is a SHA-256 hex digest."""
    return _fanned_key(BLOB_PREFIX, "blob", digest)


def blob_id_of(key: str) -> str | None:
    """`blobs/ab/abcd...` → `abcd...`; None for anything else under blobs/."""
    return _fanned_id(BLOB_PREFIX, key)


def pack_key(pack: str) -> str:
    """The object key of a pack id (the SHA-256 hex of its bytes), after checking it is one."""
    return _fanned_key(PACK_PREFIX, "pack", pack)


def pack_id_of(key: str) -> str | None:
    """`packs/ab/abcd...` → `abcd...`; None for anything else under packs/."""
    return _fanned_id(PACK_PREFIX, key)


def temp_blob_key(token: str) -> str:
    """A temp key for an upload whose hash is not known yet (`token`: a fresh uuid hex)."""
    return f"{TEMP_BLOB_PREFIX}{token}"


def probe_key(token: str) -> str:
    return f"{PROBE_PREFIX}{token}"


def gc_mark_key(token: str) -> str:
    return f"{GC_MARK_PREFIX}{token}"


# ---- auth -----------------------------------------------------------------------------------


def token_key(digest: str) -> str:
    """A token's record, by the SHA-256 hex of the token: the token itself is never stored."""
    if not _HASH_RE.fullmatch(digest):
        raise InvalidArgument(f"not a token digest: '{digest[:80]}'")
    return f"{AUTH_PREFIX}tokens/{digest}"


def roles_key(repo: str) -> str:
    return f"{AUTH_PREFIX}roles/{validate_name(repo, 'repo')}"


# ---- pipelines ------------------------------------------------------------------------------


def pipeline_prefix(name: str) -> str:
    return f"{PIPELINES_PREFIX}{name}/"


def pipeline_info_key(name: str) -> str:
    return f"{pipeline_prefix(name)}info"


def pipeline_version_key(name: str, version: int) -> str:
    return f"{pipeline_prefix(name)}versions/{version}"


def job_markers_prefix(pipeline: str) -> str:
    return f"{pipeline_prefix(pipeline)}jobs/"


def job_marker_name(created_ns: int, job_id: str) -> str:
    """Zero-padded creation time first, so a listing is in creation order."""
    return f"{created_ns:020d}_{job_id}"


def job_marker_key(pipeline: str, created_ns: int, job_id: str) -> str:
    return f"{job_markers_prefix(pipeline)}{job_marker_name(created_ns, job_id)}"


def job_of_marker(name: str) -> str | None:
    """The job id of a marker's name (`<created-ns>_<job>`); None for another name."""
    _, underscore, job_id = name.partition("_")
    return job_id if underscore else None


def index_key(pipeline: str, job_id: str) -> str:
    return f"{pipeline_prefix(pipeline)}index/{job_id}"


def index_of(key: str) -> tuple[str, str] | None:
    """`pipelines/<name>/index/<job>` → (name, job); None for any other key."""
    parts = key.split("/")
    if len(parts) == 4 and parts[0] + "/" == PIPELINES_PREFIX and parts[2] == "index":
        return parts[1], parts[3]
    return None


# ---- jobs -----------------------------------------------------------------------------------


def job_prefix(job_id: str) -> str:
    return f"{JOBS_PREFIX}{job_id}/"


def job_info_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}info"


def job_plan_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}plan"


def job_status_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}status"


def job_image_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}image"


def results_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}results/"


def result_key(job_id: str, datum_id: str) -> str:
    return f"{results_prefix(job_id)}{datum_id}"


def attempts_prefix(job_id: str, datum_id: str) -> str:
    """The folder of a datum's attempts: one listing gives every attempt and marker."""
    return f"{job_prefix(job_id)}attempts/{datum_id}/"


def attempt_name(number: int, marker: str | None = None) -> str:
    """`<n>`, or `<n>.<marker>` for a marker beside attempt n (GIVEN_BACK, RESTARTED)."""
    return str(number) if marker is None else f"{number}.{marker}"


def attempt_key(job_id: str, datum_id: str, number: int, marker: str | None = None) -> str:
    return f"{attempts_prefix(job_id, datum_id)}{attempt_name(number, marker)}"


def logs_prefix(job_id: str, datum_id: str | None = None) -> str:
    """Every log of a job, or of one of its datums."""
    below = f"{datum_id}/" if datum_id else ""
    return f"{job_prefix(job_id)}logs/{below}"


def log_key(job_id: str, datum_id: str, attempt: int) -> str:
    return f"{logs_prefix(job_id, datum_id)}{attempt}"


LOG_SEQ_DIGITS = 8  # segments of one attempt list in order


def log_segment_key(job_id: str, datum_id: str, attempt: int, seq: int) -> str:
    """Segment `seq` of attempt n's lines: beside the summary `<n>` (a folder store cannot hold
    a file `<n>` and a folder `<n>/`), numbered so a listing gives them in order."""
    return f"{log_key(job_id, datum_id, attempt)}.{seq:0{LOG_SEQ_DIGITS}d}"


def parse_log_key(key: str) -> tuple[str, int, int | None] | None:
    """(datum, attempt, seq) of a key under a job's logs, seq None for a summary; None when the
    key is neither (a stranger in the folder is skipped, not trusted)."""
    parts = key.rsplit("/", 2)
    if len(parts) != 3 or not parts[0].endswith("/logs"):
        return None
    datum, name = parts[1], parts[2]
    number, dot, seq = name.partition(".")
    if not number.isdigit() or (dot and not (seq.isdigit() and len(seq) >= LOG_SEQ_DIGITS)):
        return None
    return datum, int(number), int(seq) if dot else None
