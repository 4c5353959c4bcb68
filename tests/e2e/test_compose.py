"""End to end: the compose stack (docker-compose.yml + compose/ci.yml, three workers) driven by
the herd CLI from the host, the way the README's "Run a cluster" says.

One stack for the module (tests/e2e/conftest.py): the word-count and edges/montage examples
run from examples/*/ as they are, then a job long enough to watch: its datums spread over all
three workers, and Redis is restarted in the middle of it, after which the job must still
finish with every output exactly once.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from storage.factory import open_object_store
from storage.settings import StorageSettings
from tests.e2e.conftest import ROOT, WORKERS, Stack, run, wait_for

# The first test's setup may build the images cold (a few minutes): more than pytest's default.
pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]

FLUSH_TIMEOUT = 240  # seconds, for a job of a few datums on a loaded 2-core CI machine

POEMS = {
    "basho.txt": "An old silent pond\nA frog jumps into the pond\nSplash! Silence again.\n",
    "soseki.txt": "Over the wintry\nforest, winds howl in rage\nwith no leaves to blow.\n",
    "buson.txt": "The light of a candle\nis transferred to another candle\nspring twilight\n",
    "issa.txt": "The pond again, the frog again\n",
}


def put_folder(stack: Stack, tmp_path: Path, repo: str, files: dict[str, str]) -> None:
    folder = tmp_path / repo
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    stack.herd("create-repo", repo)
    stack.herd("put-file", repo, "master", "/", "-r", "-f", str(folder))


def read_tree(stack: Stack, tmp_path: Path, repo: str) -> dict[str, str]:
    """Every file of the repo's master head, as text (`get-file -r -o`)."""
    out = tmp_path / f"out-{repo}"
    stack.herd("get-file", repo, "master", "/", "-r", "-o", str(out))
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()}


def job_of(stack: Stack, pipeline: str) -> dict:
    jobs = stack.herd_json_lines("list-job", "-p", pipeline)
    assert len(jobs) == 1, jobs
    return jobs[0]


def test_word_count_example(compose_stack: Stack, tmp_path: Path) -> None:
    # Given the word-count example's input repo, filled from the host
    put_folder(compose_stack, tmp_path, "words", POEMS)

    # When its two pipelines are created from examples/wordcount/ and the cluster runs them
    compose_stack.herd("create-pipeline", "-f", str(ROOT / "examples/wordcount/map.json"))
    compose_stack.herd("create-pipeline", "-f", str(ROOT / "examples/wordcount/reduce.json"))
    compose_stack.herd("flush-commit", "words", "master", "--timeout", str(FLUSH_TIMEOUT), timeout=FLUSH_TIMEOUT + 30)

    # Then reduce holds each word's total over all poems, and both jobs succeeded
    expected = Counter(w.lower() for text in POEMS.values() for w in re.findall(r"[A-Za-z]+", text))
    counts = {word: int(text) for word, text in read_tree(compose_stack, tmp_path, "reduce").items()}
    assert counts == dict(expected)
    assert counts["pond"] == 3
    for pipeline, total in (("map", len(POEMS)), ("reduce", 1)):
        job = job_of(compose_stack, pipeline)
        assert (job["state"], job["data_processed"], job["data_total"]) == ("JOB_SUCCESS", total, total)


def test_edges_and_montage_example(compose_stack: Stack, tmp_path: Path) -> None:
    # Given an images repo (text stands in for pictures: "edges" upper-cases each file)
    images = {"cat.txt": "a cat on a mat\n", "dog.txt": "a dog in the fog\n", "owl.txt": "an owl at night\n"}
    put_folder(compose_stack, tmp_path, "images", images)

    # When the opencv example's two pipelines run: edges per image, montage over images x edges
    compose_stack.herd("create-pipeline", "-f", str(ROOT / "examples/edges/edges.json"))
    compose_stack.herd("create-pipeline", "-f", str(ROOT / "examples/edges/montage.json"))
    compose_stack.herd("flush-commit", "images", "master", "--timeout", str(FLUSH_TIMEOUT), timeout=FLUSH_TIMEOUT + 30)

    # Then edges has each image upper-cased, and montage is every edges file then every image,
    # in the sorted order of their /pfs paths (/pfs/edges/... before /pfs/images/...)
    edges = {name: text.upper() for name, text in images.items()}
    assert read_tree(compose_stack, tmp_path, "edges") == edges
    montage = "".join(edges[n] for n in sorted(edges)) + "".join(images[n] for n in sorted(images))
    assert read_tree(compose_stack, tmp_path, "montage") == {"montage": montage}
    assert job_of(compose_stack, "montage")["state"] == "JOB_SUCCESS"


SPREAD_DATUMS = 24
SPREAD = {
    "pipeline": {"name": "spread"},
    "description": "one output per datum plus one line each in /all; about 2 s a datum",
    "transform": {
        "image": "busybox",
        "cmd": ["sh", "-c", (
            "for f in $(find /pfs/parts -type f); do n=$(basename $f); "
            "cat $f > /pfs/out/$n; echo $n > /pfs/out/all; echo done $n; done; sleep 2"
        )],
    },
    "input": {"pfs": {"repo": "parts", "glob": "/*"}},
}


def test_workers_share_a_job_that_survives_a_redis_restart(compose_stack: Stack, tmp_path: Path) -> None:
    # Given 24 datums of about 2 s each: long enough to restart Redis while they run
    parts = {f"p{i:02d}": f"part {i}\n" for i in range(SPREAD_DATUMS)}
    put_folder(compose_stack, tmp_path, "parts", parts)
    spec = tmp_path / "spread.json"
    spec.write_text(json.dumps(SPREAD))
    compose_stack.herd("create-pipeline", "-f", str(spec))

    # When Redis (the broker, append-only) restarts once some datums are done and most are not
    job_id = wait_for(lambda: [j["job"]["id"] for j in compose_stack.herd_json_lines("list-job", "-p", "spread")],
                      FLUSH_TIMEOUT, "the spread job")[0]

    def succeeded() -> int:
        return sum(d["state"] == "SUCCESS" for d in compose_stack.herd_json_lines("list-datum", job_id))

    done = wait_for(succeeded, FLUSH_TIMEOUT, "the first datum of the spread job to succeed")
    assert done < SPREAD_DATUMS, "the job ended before Redis could be restarted in the middle of it"
    aof = compose_stack.compose("exec", "-T", "redis", "redis-cli", "config", "get", "appendonly").stdout.split()
    assert aof == ["appendonly", "yes"]
    compose_stack.compose("restart", "redis", timeout=120)

    # Then the job still finishes, every datum succeeded, and each output is there exactly once
    compose_stack.herd("flush-commit", "parts", "master", "--timeout", str(FLUSH_TIMEOUT), timeout=FLUSH_TIMEOUT + 30)
    job = job_of(compose_stack, "spread")
    assert (job["state"], job["data_processed"], job["data_failed"]) == ("JOB_SUCCESS", SPREAD_DATUMS, 0), job
    tree = read_tree(compose_stack, tmp_path, "spread")
    assert sorted(tree.pop("all").split()) == sorted(parts)  # merged from all datums, no duplicate
    assert tree == parts
    assert job["job"]["id"] == job_id
    datums = compose_stack.herd_json_lines("list-datum", job_id)
    assert len(datums) == SPREAD_DATUMS and {d["state"] for d in datums} == {"SUCCESS"}

    # And all three workers ran some of them: each datum's result names its worker, whose id
    # is `<container hostname>-<pid>`
    workers = Counter(result["worker"].rsplit("-", 1)[0] for result in results(compose_stack, job_id))
    assert sum(workers.values()) == SPREAD_DATUMS
    assert set(workers) == compose_stack.worker_hostnames, workers
    assert len(workers) == WORKERS


def test_the_readme_walk_through_through_the_server(compose_stack: Stack, tmp_path: Path) -> None:
    # Given a user of the cluster with only HERD_ADDRESS (README.md, "Run a cluster")
    herd = compose_stack.through_server
    folder = tmp_path / "poems"
    folder.mkdir()
    for name, text in POEMS.items():
        (folder / name).write_text(text)
    # When the word count runs through the server
    herd("create-repo", "words2")
    herd("put-file", "words2", "master", "/", "-r", "-f", str(folder))
    for stage in ("map", "reduce"):
        spec = json.loads((ROOT / f"examples/wordcount/{stage}.json").read_text())
        spec["pipeline"]["name"] = f"{stage}2"
        # Other repos under the names the scripts read (/pfs/words, /pfs/map)
        old_repo = spec["input"]["pfs"]["repo"]
        spec["input"]["pfs"].update({"repo": f"{old_repo}2", "name": old_repo})
        path = tmp_path / f"{stage}2.json"
        path.write_text(json.dumps(spec))
        herd("create-pipeline", "-f", str(path))
    herd("flush-commit", "words2", "master", "--timeout", str(FLUSH_TIMEOUT), timeout=FLUSH_TIMEOUT + 30)
    # Then the output reads the same through the server as from storage
    assert herd("get-file", "reduce2", "master", "/pond").stdout == "3\n"
    assert herd("list-repo", "--json").stdout == compose_stack.herd("list-repo", "--json").stdout
    jobs = [json.loads(line) for line in herd("list-job", "-p", "reduce2", "--json").stdout.splitlines()]
    assert [job["state"] for job in jobs] == ["JOB_SUCCESS"]


def test_every_long_running_service_reports_healthy(compose_stack: Stack) -> None:
    # Given the stack after the jobs above (its healthchecks have had time to run)
    containers = {cid: service for service in ("redis", "minio", "scheduler", "worker", "server")
                  for cid in compose_stack.container_ids(service)}
    assert len(containers) == 4 + WORKERS

    # Then every container's own healthcheck passes (worker: Celery ping; scheduler: the lock)
    def health() -> dict[str, str]:
        return {cid[:12]: run(["docker", "inspect", "-f", "{{.State.Health.Status}}", cid], timeout=30).stdout.strip()
                for cid in containers}

    wait_for(lambda: set(health().values()) == {"healthy"}, 120, "every service to be healthy")


def results(stack: Stack, job_id: str) -> list[dict]:
    """Every datum's stored result record, read at `jobs/<job>/results/<datum>` (docs/design.md)."""
    settings = StorageSettings(storage=stack.cli_env["HERD_STORAGE"], s3_endpoint_url=stack.cli_env["AWS_ENDPOINT_URL"])
    with pytest.MonkeyPatch.context() as patch:  # boto3 takes credentials from the environment
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            patch.setenv(name, stack.cli_env[name])
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE"):
            patch.delenv(name, raising=False)
        objects = open_object_store(settings)
        return [json.loads(objects.get(key)) for key in objects.list(f"jobs/{job_id}/results/")]


# ---- metrics, Prometheus and Flower (issue 11) ------------------------------------------------

MONITORED = {"pipeline": {"name": "mon"},
             "transform": {"image": "busybox", "cmd": ["sh", "-c", "cp /pfs/src/* /pfs/out/"]},
             "input": {"pfs": {"repo": "src", "glob": "/*"}}}


def get(url: str, auth: tuple[str, str] | None = None) -> bytes:
    import base64
    import urllib.request

    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return response.read()


def published(stack: Stack, variable: str) -> str:
    """http://127.0.0.1:<port> of a port the stack publishes (`127.0.0.1:<port>` in its env)."""
    return f"http://{stack.env[variable]}"


def run_monitored_job(stack: Stack, tmp_path: Path, repo: str, pipeline: str, datums: int) -> None:
    spec = {**MONITORED, "pipeline": {"name": pipeline},
            "transform": {**MONITORED["transform"], "cmd": ["sh", "-c", f"cp /pfs/{repo}/* /pfs/out/"]},
            "input": {"pfs": {"repo": repo, "glob": "/*"}}}
    put_folder(stack, tmp_path, repo, {f"f{i}.txt": f"{i}\n" for i in range(datums)})
    spec_file = tmp_path / f"{pipeline}.json"
    spec_file.write_text(json.dumps(spec))
    stack.herd("create-pipeline", "-f", str(spec_file))
    stack.herd("flush-commit", repo, "master", "--timeout", str(FLUSH_TIMEOUT), timeout=FLUSH_TIMEOUT + 30)


def test_prometheus_profile_scrapes_the_scheduler_and_every_worker(compose_stack: Stack, tmp_path: Path) -> None:
    # Given the scheduler's metrics on its published port
    scheduler = published(compose_stack, "SCHEDULER_METRICS_PORT")
    wait_for(lambda: b"herd_reconcile_pass_seconds_count" in get(f"{scheduler}/metrics"), 60, "the scheduler's metrics")
    # And a Prometheus image: built offline on the herd base, or skipped saying why
    build = run(["bash", "compose/build-images.sh", "prometheus"], env=compose_stack.env, timeout=900, check=False)
    if build.returncode != 0:
        pytest.skip(f"no Prometheus image (compose/build-images.sh prometheus: {build.stderr.strip()[-300:]})")
    # When the monitoring profile starts, and a job of 5 datums runs
    compose_stack.compose("--profile", "monitoring", "up", "-d", "--no-deps", "prometheus", timeout=180)
    try:
        prometheus = published(compose_stack, "PROMETHEUS_PORT")

        def targets_up() -> Counter[str]:
            active = json.loads(get(f"{prometheus}/api/v1/targets"))["data"]["activeTargets"]
            return Counter(t["labels"]["job"] for t in active if t["health"] == "up")

        wait_for(lambda: targets_up() == {"herd-scheduler": 1, "herd-worker": WORKERS}, 120,
                 "Prometheus to scrape the scheduler and every worker")
        run_monitored_job(compose_stack, tmp_path, "src", "mon", 5)

        # Then Prometheus holds the workers' total for the job's pipeline: inspect-job's count
        def processed() -> float:
            query = 'sum(herd_datums_processed_total{pipeline="mon"})'
            result = json.loads(get(f"{prometheus}/api/v1/query?query={query.replace(' ', '%20')}"))["data"]["result"]
            return float(result[0]["value"][1]) if result else -1.0

        wait_for(lambda: processed() == 5.0, 90, "Prometheus to see 5 datums processed")
        assert job_of(compose_stack, "mon")["data_processed"] == 5
    finally:
        compose_stack.compose("--profile", "monitoring", "rm", "-sf", "prometheus", timeout=120, check=False)


def test_flower_profile_shows_batches_by_name_with_pipeline_job_and_datums(
    compose_stack: Stack, tmp_path: Path,
) -> None:
    # Given Flower (the flower profile, herd's image) with a login, so that its HTTP API answers
    auth = ("herd", "flower-test")
    env = {**compose_stack.env, "FLOWER_BASIC_AUTH": ":".join(auth)}
    up = [*compose_stack.compose_cmd, "-p", compose_stack.project, "-f", "docker-compose.yml", "-f", "compose/ci.yml",
          "--profile", "flower", "up", "-d", "--no-deps", "flower"]
    run(up, env=env, timeout=180)
    try:
        flower = published(compose_stack, "FLOWER_PORT")
        wait_for(lambda: get(f"{flower}/healthcheck") == b"OK", 120, "Flower to answer")
        wait_for(lambda: len(json.loads(get(f"{flower}/api/workers?refresh=1", auth))) >= WORKERS, 120,
                 "Flower to see every worker")
        # Flower hears events (every worker's heartbeat reached it) and has turned task events on
        # in every worker (it does every 5 s): a job that ran before either would go unseen.
        wait_for(lambda: len(json.loads(get(f"{flower}/workers?json=1", auth))["data"]) >= WORKERS, 120,
                 "Flower to hear every worker's events")

        def task_events_on() -> bool:
            proc = compose_stack.compose("exec", "-T", "flower", "celery", "--no-color", "-A", "worker.app", "control",
                                         "enable_events", "--timeout", "5", check=False)
            return proc.stdout.count("already enabled") >= WORKERS

        wait_for(task_events_on, 120, "task events to be on in every worker")
        # When a job runs (Flower turned the workers' task events on)
        run_monitored_job(compose_stack, tmp_path, "fsrc", "fmon", 3)
        job_id = job_of(compose_stack, "fmon")["job"]["id"]

        # Then its batches show as herd.process_batch, their arguments naming pipeline, job and datums
        def batches() -> list[dict]:
            tasks = json.loads(get(f"{flower}/api/tasks", auth)).values()
            return [t for t in tasks if t.get("name") == "herd.process_batch" and "pipeline=fmon" in str(t.get("args"))]

        found = wait_for(batches, 60, "Flower to list the job's batches")
        assert all(re.fullmatch(r"pipeline=fmon job=\w{12} datums=\d+", str(t["args"])) for t in found), found
        assert all(job_id.startswith(str(t["args"]).split("job=")[1].split()[0]) for t in found)
    finally:
        compose_stack.compose("--profile", "flower", "rm", "-sf", "flower", timeout=120, check=False)
