"""Pipelines on the embedded default, end to end: real storage, real processes per datum."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from scheduler.cli.embedded import settle
from scheduler.job_records import JobState
from scheduler.pipelines import Pipelines
from scheduler.queries import JobQueries
from scheduler.settings import SchedulerSettings
from storage.errors import AlreadyExists, InvalidSpec, PipelineCycle, PipelineNotFound, RepoNotFound
from storage.local import LocalObjectStore
from storage.repos import Pfs
from tests.scheduler.pipeline_helpers import EDGES, MONTAGE, WORDCOUNT_MAP, WORDCOUNT_REDUCE, files_of, read


class Herd:
    """A laptop install: local folder storage, in-process scheduler."""

    def __init__(self, pfs: Pfs) -> None:
        self.pfs = pfs
        self.pipelines = Pipelines(pfs)
        self.jobs = JobQueries(pfs)

    def settle(self) -> None:
        settle(self.pfs, SchedulerSettings(broker=None, parallelism=2))

    def put(self, repo: str, files: dict[str, bytes]) -> None:
        self.pfs.put_files(repo, "master", [(path, data) for path, data in files.items()])
        self.settle()

    def create(self, spec: dict) -> None:
        self.pipelines.create(copy.deepcopy(spec))
        self.settle()

    def last_job(self, pipeline: str):
        return self.jobs.list(pipeline)[0]


@pytest.fixture
def herd(tmp_path: Path) -> Herd:
    return Herd(Pfs(LocalObjectStore(tmp_path / "store")))


def test_wordcount_map_reduce_relies_on_same_path_merge(herd: Herd) -> None:
    # Given three documents in a repo
    herd.pfs.create_repo("words")
    herd.put("words", {"/a.txt": b"the cat the dog", "/b.txt": b"The end", "/c.txt": b"dog days"})
    # When the map and reduce stages are created
    herd.create(WORDCOUNT_MAP)
    herd.create(WORDCOUNT_REDUCE)
    # Then map's outputs for the same word were concatenated and reduce summed them
    mapped = files_of(herd.pfs, "map")
    assert sorted(mapped["/the"].split()) == [b"1", b"2"]
    reduced = files_of(herd.pfs, "reduce")
    assert reduced == {"/the": b"3\n", "/cat": b"1\n", "/dog": b"2\n", "/end": b"1\n", "/days": b"1\n"}
    info, status = herd.last_job("map")
    assert status.state == JobState.JOB_SUCCESS
    assert (status.data_total, status.data_processed, status.data_skipped) == (3, 3, 0)
    # And the output commit's provenance reaches back to the input commit, transitively
    out = herd.pfs.inspect_commit("reduce", "master")
    assert {p.repo for p in out.provenance} == {"map", "words"}


def test_edges_then_montage_crosses_raw_repo_with_first_stage(herd: Herd) -> None:
    herd.pfs.create_repo("images")
    herd.put("images", {"/1.img": b"abc\n", "/2.img": b"xyz\n"})
    herd.create(EDGES)
    herd.create(MONTAGE)
    assert files_of(herd.pfs, "edges") == {"/1.img": b"ABC\n", "/2.img": b"XYZ\n"}
    assert files_of(herd.pfs, "montage") == {"/montage": b"ABC\nXYZ\nabc\nxyz\n"}
    # A new image flows through both stages; montage sees both commits
    herd.put("images", {"/3.img": b"new\n"})
    assert read(herd.pfs, "montage", "master", "/montage") == b"ABC\nXYZ\nNEW\nabc\nxyz\nnew\n"


def test_incremental_add_modify_delete_runs_one_datum(herd: Herd) -> None:
    spec = {
        "pipeline": {"name": "copy"},
        "transform": {"cmd": ["sh", "-c", "cp -r /pfs/in/* /pfs/out/"]},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
    }
    herd.pfs.create_repo("in")
    herd.put("in", {f"/f{i:02d}": f"{i}\n".encode() for i in range(20)})
    herd.create(spec)
    assert herd.last_job("copy")[1].data_processed == 20

    herd.put("in", {"/new": b"added\n"})
    status = herd.last_job("copy")[1]
    assert (status.data_processed, status.data_skipped, status.data_total) == (1, 20, 21)
    assert read(herd.pfs, "copy", "master", "/new") == b"added\n"

    herd.put("in", {"/f03": b"changed\n"})
    status = herd.last_job("copy")[1]
    assert (status.data_processed, status.data_skipped) == (1, 20)
    assert read(herd.pfs, "copy", "master", "/f03") == b"changed\n"

    herd.pfs.delete_file("in", "master", "/f05")
    herd.settle()
    status = herd.last_job("copy")[1]
    assert (status.data_processed, status.data_skipped, status.data_total) == (0, 20, 20)
    assert "/f05" not in files_of(herd.pfs, "copy")


def test_every_existing_commit_gets_a_job_oldest_first(herd: Herd) -> None:
    herd.pfs.create_repo("in")
    for i in range(3):
        herd.pfs.put_file("in", "master", f"/f{i}", f"{i}".encode())
    spec = {
        "pipeline": {"name": "count"},
        "transform": {"cmd": ["sh", "-c", "ls /pfs/in | wc -l > /pfs/out/n"]},
        "input": {"pfs": {"repo": "in", "glob": "/"}},
    }
    herd.create(spec)
    jobs = herd.jobs.list("count")
    assert len(jobs) == 3
    counts = [read(herd.pfs, "count", status.output_commit, "/n").strip() for _, status in reversed(jobs)]
    assert counts == [b"1", b"2", b"3"]


def test_cross_and_union_datum_counts(herd: Herd) -> None:
    for repo, n in (("a", 3), ("b", 4)):
        herd.pfs.create_repo(repo)
        herd.put(repo, {f"/{repo}{i}": b"x" for i in range(n)})
    cross = {
        "pipeline": {"name": "crossed"},
        "transform": {"cmd": ["sh", "-c", "echo $a $b > /pfs/out/$(basename $a)-$(basename $b)"]},
        "input": {"cross": [{"pfs": {"repo": "a", "glob": "/*"}}, {"pfs": {"repo": "b", "glob": "/*"}}]},
    }
    union = {
        "pipeline": {"name": "unioned"},
        "transform": {"cmd": ["sh", "-c", "ls /pfs/ > /pfs/out/$PACH_DATUM_ID"]},
        "input": {"union": [{"pfs": {"repo": "a", "glob": "/*"}}, {"pfs": {"repo": "b", "glob": "/*"}}]},
    }
    herd.create(cross)
    herd.create(union)
    assert herd.last_job("crossed")[1].data_total == 12
    assert len(files_of(herd.pfs, "crossed")) == 12
    assert herd.last_job("unioned")[1].data_total == 7


def test_failing_datum_is_retried_then_fails_the_job_and_keeps_logs(herd: Herd) -> None:
    herd.pfs.create_repo("in")
    herd.put("in", {"/good": b"ok", "/bad": b"boom"})
    spec = {
        "pipeline": {"name": "fragile"},
        "transform": {"cmd": ["sh", "-c", "echo trying $in; grep -q boom $in && exit 3; cp $in /pfs/out/"]},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
        "datum_tries": 2,
    }
    herd.create(spec)
    info, status = herd.last_job("fragile")
    assert status.state == JobState.JOB_FAILURE
    assert status.data_failed == 1 and len(status.failed_datums) == 1
    out = herd.pfs.inspect_commit("fragile", "master")
    assert out.failed_reason and "failed to process datum" in out.failed_reason
    assert herd.pfs.read_manifest(out).files == {}  # no partial outputs
    logs = list(herd.jobs.logs(None, info.id, status.failed_datums[0]))
    assert [entry["attempt"] for entry in logs] == [1, 2]
    scope = herd.jobs.log_scope(None, info.id, status.failed_datums[0])
    printed = [(line.attempt, line.message) for line in herd.jobs.new_log_lines(scope) if line.stream == "stdout"]
    assert printed == [(1, "trying /pfs/in/bad"), (2, "trying /pfs/in/bad")]  # live log segments, per attempt
    assert "exited with code 3" in logs[-1]["reason"]
    # The pipeline keeps serving later commits
    herd.pfs.delete_file("in", "master", "/bad")
    herd.settle()
    assert herd.last_job("fragile")[1].state == JobState.JOB_SUCCESS


def test_accept_return_code_counts_as_success(herd: Herd) -> None:
    herd.pfs.create_repo("in")
    herd.put("in", {"/x": b"1"})
    spec = {
        "pipeline": {"name": "lenient"},
        "transform": {"cmd": ["sh", "-c", "touch /pfs/out/done; exit 4"], "accept_return_code": [4]},
        "input": {"pfs": {"repo": "in", "glob": "/"}},
    }
    herd.create(spec)
    assert herd.last_job("lenient")[1].state == JobState.JOB_SUCCESS


def test_downstream_of_a_failed_job_is_unrunnable(herd: Herd) -> None:
    herd.pfs.create_repo("in")
    herd.put("in", {"/x": b"1"})
    herd.create({
        "pipeline": {"name": "broken"}, "transform": {"cmd": ["false"]},
        "input": {"pfs": {"repo": "in", "glob": "/"}}, "datum_tries": 1,
    })
    herd.create({
        "pipeline": {"name": "after"}, "transform": {"cmd": ["true"]},
        "input": {"pfs": {"repo": "broken", "glob": "/"}},
    })
    status = herd.last_job("after")[1]
    assert status.state == JobState.JOB_UNRUNNABLE
    assert "broken@" in status.reason


def test_update_pipeline_reuses_done_datums_unless_reprocess(herd: Herd) -> None:
    herd.pfs.create_repo("in")
    herd.put("in", {"/a": b"1", "/b": b"2"})
    spec = {
        "pipeline": {"name": "p"}, "transform": {"cmd": ["sh", "-c", "echo v1 > /pfs/out/$(basename $in)"]},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
    }
    herd.create(spec)
    spec["transform"]["cmd"] = ["sh", "-c", "echo v2 > /pfs/out/$(basename $in)"]
    herd.pipelines.create(copy.deepcopy(spec), update=True)
    herd.settle()
    status = herd.last_job("p")[1]
    assert (status.data_skipped, status.data_processed) == (2, 0)
    assert read(herd.pfs, "p", "master", "/a") == b"v1\n"
    herd.pipelines.create(copy.deepcopy(spec), update=True, reprocess=True)
    herd.settle()
    assert read(herd.pfs, "p", "master", "/a") == b"v2\n"
    assert herd.pipelines.inspect("p").version == 3


def test_bad_pipelines_are_refused_and_change_nothing(herd: Herd) -> None:
    herd.pfs.create_repo("in")
    good = {"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "in", "glob": "/"}}}
    with pytest.raises(RepoNotFound, match="nope"):
        herd.pipelines.create({**good, "input": {"pfs": {"repo": "nope", "glob": "/"}}})
    with pytest.raises(InvalidSpec, match="transform.imagee"):
        herd.pipelines.create({**good, "transform": {"cmd": ["true"], "imagee": "x"}})
    herd.pipelines.create(copy.deepcopy(good))
    with pytest.raises(AlreadyExists, match="'p'"):
        herd.pipelines.create(copy.deepcopy(good))
    with pytest.raises(PipelineCycle):
        herd.pipelines.create({**good, "pipeline": {"name": "in2"}, "input": {"pfs": {"repo": "in2", "glob": "/"}}})
    assert [p.name for p in herd.pipelines.list()] == ["p"]


def test_stop_and_start_pipeline(herd: Herd) -> None:
    herd.pfs.create_repo("in")
    herd.create({"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "in", "glob": "/"}}})
    herd.pipelines.set_stopped("p", True)
    herd.put("in", {"/x": b"1"})
    assert herd.jobs.list("p") == []
    herd.pipelines.set_stopped("p", False)
    herd.settle()
    assert herd.last_job("p")[1].state == JobState.JOB_SUCCESS


def test_flush_commit_lists_downstream_outputs(herd: Herd) -> None:
    herd.pfs.create_repo("words")
    herd.put("words", {"/a": b"hello world"})
    herd.create(WORDCOUNT_MAP)
    herd.create(WORDCOUNT_REDUCE)
    commit = herd.pfs.inspect_commit("words", "master")
    outputs = herd.jobs.flush_commit("words", commit.id)
    assert [c.repo for c in outputs] == ["map", "reduce"]


def test_flush_jobs_waits_for_the_montage_job_that_saw_the_new_edges(herd: Herd) -> None:
    # Given edges and montage (crossing images with edges) over a first commit
    herd.pfs.create_repo("images")
    herd.put("images", {"/1.img": b"abc\n"})
    herd.create(EDGES)
    herd.create(MONTAGE)
    # When a second image arrives and flush waits on it
    herd.pfs.put_files("images", "master", [("/2.img", b"xyz\n")])
    second = herd.pfs.inspect_commit("images", "master")
    rows = JobQueries(herd.pfs, settle=herd.settle).flush_jobs("images", second.id)
    # Then edges' job on it, and the montage job on it AND on that edges output, came back
    assert [(r.pipeline, r.status.state) for r in rows] == [
        ("edges", JobState.JOB_SUCCESS), ("montage", JobState.JOB_SUCCESS),
    ]
    edges, montage = rows
    assert {(i.repo, i.id) for i in montage.job.inputs} == {("images", second.id), ("edges", edges.output.id)}
    assert montage.output is not None and montage.output.id == montage.job.id


def test_flush_jobs_returns_a_failure_and_the_unrunnable_jobs_below_it(herd: Herd) -> None:
    # Given a three-stage chain whose first stage fails on the commit
    herd.pfs.create_repo("in")
    herd.put("in", {"/x": b"1"})
    stage = {"transform": {"cmd": ["sh", "-c", "cp -r /pfs/$IN/. /pfs/out/"]}, "datum_tries": 1}
    herd.create({"pipeline": {"name": "s1"}, "transform": {"cmd": ["false"]}, "datum_tries": 1,
                 "input": {"pfs": {"repo": "in", "glob": "/"}}})
    herd.create({**stage, "pipeline": {"name": "s2"}, "input": {"pfs": {"repo": "s1", "glob": "/"}}})
    herd.create({**stage, "pipeline": {"name": "s3"}, "input": {"pfs": {"repo": "s2", "glob": "/"}}})
    commit = herd.pfs.inspect_commit("in", "master")
    # When flush waits on it, Then it returns every job with its state (no wait for outputs)
    rows = herd.jobs.flush_jobs("in", commit.id, timeout=60)
    assert [(r.pipeline, r.status.state) for r in rows] == [
        ("s1", JobState.JOB_FAILURE), ("s2", JobState.JOB_UNRUNNABLE), ("s3", JobState.JOB_UNRUNNABLE),
    ]
    assert rows[1].status.reason == f"inputs failed: s1@{rows[0].job.id}"
    # And flush_commit (output commits only) keeps its shape: the failed outputs, upstream first
    assert [c.repo for c in herd.jobs.flush_commit("in", commit.id, timeout=60)] == [r.pipeline for r in rows if r.output]


def test_delete_pipeline_removes_output_repo(herd: Herd) -> None:
    herd.pfs.create_repo("in")
    herd.create({"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "in", "glob": "/"}}})
    herd.pipelines.delete("p")
    assert herd.pipelines.list() == []
    assert [r.name for r in herd.pfs.list_repos()] == ["in"]


def test_a_pipeline_made_again_with_its_salt_and_inputs_is_not_served_its_old_plan(tmp_path: Path) -> None:
    from scheduler.store import PpsStore

    # Given a pipeline with an explicit salt, its job run, and a long-lived process (a worker,
    # a scheduler) that read that job's plan and keeps it
    here = Herd(Pfs(LocalObjectStore(tmp_path / "store")))
    here.pfs.create_repo("in")
    here.put("in", {"/a": b"a\n"})
    spec = {"pipeline": {"name": "p"}, "salt": "fixed", "transform": {"cmd": ["sh", "-c", "echo one > /pfs/out/x"]},
            "input": {"pfs": {"repo": "in", "glob": "/"}}}
    here.create(spec)
    first = here.last_job("p")[0].id
    keeper = PpsStore(LocalObjectStore(tmp_path / "store"))  # its own cache, as another process has
    assert keeper.read_plan(first).spec["transform"]["cmd"][-1].startswith("echo one")  # type: ignore[union-attr]
    # When another process deletes the pipeline and makes it again: same name, salt and inputs,
    # another transform
    here.pipelines.delete("p")
    changed = copy.deepcopy(spec)
    changed["transform"]["cmd"] = ["sh", "-c", "echo two > /pfs/out/x"]
    here.create(changed)
    # Then its job has a new id, so the keeper reads the new plan, and the output is the new one
    second = here.last_job("p")[0].id
    assert second != first
    assert keeper.read_plan(second).spec["transform"]["cmd"][-1].startswith("echo two")  # type: ignore[union-attr]
    assert files_of(here.pfs, "p") == {"/x": b"two\n"}


def test_a_file_of_specs_is_validated_as_a_whole(herd: Herd) -> None:
    herd.pfs.create_repo("in")
    first = {"pipeline": {"name": "a"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "in", "glob": "/"}}}
    broken = {**first, "pipeline": {"name": "b"}, "transform": {"cmd": ["true"], "imagee": "x"}}
    # Given a valid spec followed by an invalid one, Then neither is created
    with pytest.raises(InvalidSpec, match="transform.imagee"):
        herd.pipelines.apply([copy.deepcopy(first), broken])
    with pytest.raises(InvalidSpec, match="more than once"):
        herd.pipelines.apply([copy.deepcopy(first), copy.deepcopy(first)])
    assert herd.pipelines.list() == [] and [r.name for r in herd.pfs.list_repos()] == ["in"]
    # And specs reading each other are created upstream first, whatever their order in the file
    reads_a = {**first, "pipeline": {"name": "c"}, "input": {"pfs": {"repo": "a", "glob": "/"}}}
    made = herd.pipelines.apply([reads_a, copy.deepcopy(first)])
    assert [i.name for i in made] == ["a", "c"] and all(i.version == 1 for i in made)
    assert [(p.repo, p.name) for p in herd.pfs.inspect_branch("c", "master").provenance] == [("a", "master")]


def test_update_of_a_missing_pipeline_changes_nothing(herd: Herd) -> None:
    herd.pfs.create_repo("in")
    spec = {"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "in", "glob": "/"}}}
    with pytest.raises(PipelineNotFound):
        herd.pipelines.create(copy.deepcopy(spec), update=True)
    assert herd.pipelines.list() == [] and [r.name for r in herd.pfs.list_repos()] == ["in"]
