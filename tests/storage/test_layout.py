"""storage/layout.py names every object key: the spellings are pinned (stored data outlives the
code), parses invert the builders, and no other production module spells a key."""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import layout
from storage.errors import InvalidArgument, InvalidName
from storage.objects import check_key, hidden

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("storage", "scheduler", "worker")
LAYOUT = ROOT / "storage" / "layout.py"

names = st.from_regex(r"[A-Za-z0-9_-]{1,63}", fullmatch=True)
ids = st.from_regex(r"[0-9a-f]{32}", fullmatch=True)
digests = st.binary(max_size=64).map(lambda data: hashlib.sha256(data).hexdigest())

H = "ab" + "0" * 62
# Every key as earlier versions wrote it: changing one strands stored data.
PINNED = {
    layout.repo_prefix("r"): "repos/r/",
    layout.repo_key("r"): "repos/r/repo.json",
    layout.branches_prefix("r"): "repos/r/branches/",
    layout.branch_key("r", "master"): "repos/r/branches/master",
    layout.commits_prefix("r"): "repos/r/commits/",
    layout.commit_key("r", "c1"): "repos/r/commits/c1",
    layout.open_prefix("r"): "repos/r/open/",
    layout.open_key("r", "c1"): "repos/r/open/c1",
    layout.manifest_key("m1"): "manifests/m1",
    layout.blob_key(H): f"blobs/ab/{H}",
    layout.pack_key(H): f"packs/ab/{H}",
    layout.temp_blob_key("u1"): "tmp/blobs/u1",
    layout.pipeline_prefix("p"): "pipelines/p/",
    layout.pipeline_info_key("p"): "pipelines/p/info",
    layout.pipeline_version_key("p", 3): "pipelines/p/versions/3",
    layout.job_markers_prefix("p"): "pipelines/p/jobs/",
    layout.job_marker_key("p", 1_700_000_000_123_456_789, "j1"): "pipelines/p/jobs/01700000000123456789_j1",
    layout.index_key("p", "j1"): "pipelines/p/index/j1",
    layout.job_prefix("j1"): "jobs/j1/",
    layout.job_info_key("j1"): "jobs/j1/info",
    layout.job_plan_key("j1"): "jobs/j1/plan",
    layout.job_status_key("j1"): "jobs/j1/status",
    layout.results_prefix("j1"): "jobs/j1/results/",
    layout.result_key("j1", "d1"): "jobs/j1/results/d1",
    layout.attempts_prefix("j1", "d1"): "jobs/j1/attempts/d1/",
    layout.attempt_key("j1", "d1", 2): "jobs/j1/attempts/d1/2",
    layout.attempt_key("j1", "d1", 2, layout.GIVEN_BACK): "jobs/j1/attempts/d1/2.given_back",
    layout.attempt_key("j1", "d1", 2, layout.RESTARTED): "jobs/j1/attempts/d1/2.restarted",
    layout.logs_prefix("j1"): "jobs/j1/logs/",
    layout.logs_prefix("j1", "d1"): "jobs/j1/logs/d1/",
    layout.log_key("j1", "d1", 2): "jobs/j1/logs/d1/2",
    layout.CONDITIONAL_WRITES_KEY: "_herd/conditional-writes",
    layout.probe_key("u1"): "_herd/probe/u1",
    layout.gc_mark_key("u1"): "_herd/gc/u1",
    layout.TEMP_PREFIX: "tmp/",
    layout.AUTH_STATE_KEY: "auth/state",
    layout.token_key(H): f"auth/tokens/{H}",
    layout.roles_key("r"): "auth/roles/r",
}


@pytest.mark.parametrize(("built", "expected"), PINNED.items())
def test_every_key_keeps_its_spelling(built: str, expected: str) -> None:
    assert built == expected


@pytest.mark.parametrize("key", [k for k in PINNED if not k.endswith("/")])
def test_every_key_is_one_every_store_accepts(key: str) -> None:
    assert check_key(key) == key


def test_the_stores_own_keys_are_hidden_from_data_listings() -> None:
    for key in (layout.CONDITIONAL_WRITES_KEY, layout.probe_key("u"), layout.gc_mark_key("u")):
        assert key.startswith(layout.RESERVED_PREFIX)
        assert hidden(key, "") and not hidden(key, layout.RESERVED_PREFIX)


@given(repo=names, cid=ids, branch=names)
def test_every_repo_key_names_its_repo(repo: str, cid: str, branch: str) -> None:
    for key in (layout.repo_key(repo), layout.branch_key(repo, branch), layout.commit_key(repo, cid),
                layout.open_key(repo, cid), layout.repo_prefix(repo)):
        assert key.startswith(layout.repo_prefix(repo))
        assert layout.repo_of(key) == repo
    assert layout.repo_of(layout.manifest_key(cid)) is None


@given(digest=digests)
def test_blob_ids_round_trip(digest: str) -> None:
    key = layout.blob_key(digest)
    assert layout.blob_id_of(key) == digest
    assert layout.blob_id_of(layout.temp_blob_key(digest)) is None


@pytest.mark.parametrize("bad", ["", "AB" + "0" * 62, "0" * 63, "0" * 65, "../" + "0" * 61, "0" * 64 + "\n"])
def test_blob_keys_refuse_what_is_not_a_sha256(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid blob id"):
        layout.blob_key(bad)


@pytest.mark.parametrize("key", ["blobs/ab", "blobs/cd/ab00", "blobs/ab/cd/ef", "manifests/ab/ab", "xblobs/ab/ab"])
def test_blob_id_of_other_keys_is_none(key: str) -> None:
    assert layout.blob_id_of(key) is None


@pytest.mark.parametrize("bad", ["", "AB" + "0" * 62, "0" * 63, "../" + "0" * 61])
def test_pack_keys_refuse_what_is_not_a_sha256(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid pack id"):
        layout.pack_key(bad)


@given(pack=digests)
def test_pack_ids_round_trip(pack: str) -> None:
    assert layout.pack_id_of(layout.pack_key(pack)) == pack
    assert layout.pack_id_of(layout.blob_key(pack)) is None and layout.blob_id_of(layout.pack_key(pack)) is None


@given(mid=digests)
def test_manifest_ids_round_trip(mid: str) -> None:
    assert layout.manifest_id_of(layout.manifest_key(mid)) == mid
    assert layout.manifest_id_of(layout.blob_key(mid)) is None


@given(pipeline=names, job=ids)
def test_index_keys_round_trip(pipeline: str, job: str) -> None:
    assert layout.index_of(layout.index_key(pipeline, job)) == (pipeline, job)
    for other in (layout.pipeline_info_key(pipeline), layout.pipeline_version_key(pipeline, 1),
                  layout.job_marker_key(pipeline, 1, job), layout.job_info_key(job)):
        assert layout.index_of(other) is None


@given(job=ids, stamps=st.lists(st.integers(min_value=0, max_value=10**19), min_size=1, max_size=20, unique=True))
def test_job_markers_round_trip_and_list_in_creation_order(job: str, stamps: list[int]) -> None:
    marked = {layout.job_marker_name(ns, f"{job}{i}"): (ns, f"{job}{i}") for i, ns in enumerate(stamps)}
    for name, (_, job_id) in marked.items():
        assert layout.job_of_marker(name) == job_id
        assert layout.job_marker_key("p", *marked[name]).endswith("/" + name)
    assert [marked[name][0] for name in sorted(marked)] == sorted(stamps)
    assert layout.job_of_marker("no-underscore") is None


@given(job=ids, datum=ids, number=st.integers(min_value=1, max_value=10**6))
def test_attempt_keys_sit_in_their_datums_folder(job: str, datum: str, number: int) -> None:
    folder = layout.attempts_prefix(job, datum)
    for marker in (None, layout.GIVEN_BACK, layout.RESTARTED):
        key = layout.attempt_key(job, datum, number, marker)
        assert key == folder + layout.attempt_name(number, marker)
        assert key.startswith(layout.job_prefix(job))
    assert layout.attempt_name(number).isdigit()


@pytest.mark.parametrize("bad", [("bad/repo", "b"), ("r", "bad/branch"), ("r", ""), ("r", "b\n")])
def test_branch_keys_refuse_names_reads_refuse(bad: tuple[str, str]) -> None:
    with pytest.raises(InvalidName):
        layout.branch_key(*bad)


# ---- nothing but storage/layout.py spells a key -------------------------------------------------

_TOP = "|".join(re.escape(p) for p in (
    layout.REPOS_PREFIX, layout.MANIFEST_PREFIX, layout.BLOB_PREFIX, layout.PACK_PREFIX, layout.TEMP_PREFIX,
    layout.PIPELINES_PREFIX, layout.JOBS_PREFIX, layout.RESERVED_PREFIX, layout.AUTH_PREFIX,
))
# The HTTP API's routes and its client spell URL paths (`/repos/{repo}/branches/...`), not keys.
URL_PACKAGES = ("scheduler/server/", "scheduler/remote/")
# A top-level prefix at the start of a string (or of an f-string's literal part), and a key's
# inner segments anywhere in one.
_PREFIX_RE = re.compile(rf"^(?:{_TOP})")
_SEGMENT_RE = re.compile(
    r"/(?:branches|commits|open|versions|index|results|attempts|logs)/"
    r"|/(?:info|plan|status)$|repo\.json|\.(?:given_back|restarted)\b"
)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def key_literals(path: Path) -> list[str]:
    """String literals (docstrings aside) in `path` that spell a key or part of one."""
    tree = ast.parse(path.read_text(), str(path))
    docs = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if _PREFIX_RE.search(node.value) or _SEGMENT_RE.search(node.value):
                hits.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    return hits


def test_the_scan_finds_the_layout_modules_keys() -> None:
    assert len(key_literals(LAYOUT)) >= 10


def test_no_production_module_but_the_layout_spells_a_key() -> None:
    modules = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
               if p != LAYOUT and not str(p.relative_to(ROOT)).startswith(URL_PACKAGES)]
    assert len(modules) > 50
    offenders = [hit for path in modules for hit in key_literals(path)]
    assert offenders == [], "spell keys in storage/layout.py:\n" + "\n".join(offenders)
