"""Per-datum overhead of DockerRuntime against a bare `docker exec` and `docker run`, same run.

    DOCKER_HOST=unix:///run/herd-docker.sock .venv/bin/python bench/runtime_docker.py [--n 100]

Needs a Docker engine and Debian's static busybox (/bin/busybox): the image is built locally
(`herd-test-busybox:latest`, FROM scratch + busybox) when missing. Rounds interleave the cases
so machine noise hits each alike; medians of the rounds are printed with ratios to the stream
runtime's `true`. Every DockerRuntime datum moves its inputs in and /pfs/out back; the bare
exec/run cases move nothing (they are the floor a per-datum container/exec design pays).
Last, per transfer, how soon after a datum's timeout the kill lands and run returns (the figure
tests/worker/test_docker_runtime.py used to bound). `figures(smoke)` gives bench/run.py row 14
of issue 15's table (stream runtime vs a bare exec_run; "skipped: no Docker engine" without one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.docker_runtime import DockerRuntime  # noqa: E402
from worker.docker_wire import Channel  # noqa: E402
from worker.runtime import RunRequest, Session, UserCode  # noqa: E402

IMAGE = "herd-test-busybox:latest"
ROUNDS = 5
CAT = ("sh", "-c", "cat /pfs/in/x > /pfs/out/x")


def ensure_image(client: docker.DockerClient, busybox: Path) -> None:
    """Build the busybox image from a temp context unless the engine has it."""
    try:
        client.images.get(IMAGE)
        return
    except docker.errors.ImageNotFound:
        pass
    with tempfile.TemporaryDirectory() as context:
        Path(context, "busybox").write_bytes(busybox.read_bytes())
        Path(context, "busybox").chmod(0o755)
        Path(context, "Dockerfile").write_text(
            'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","--install","-s","/bin"]\n'
        )
        client.images.build(path=context, tag=IMAGE, rm=True)


# Where a Docker engine may answer, after DOCKER_HOST: as scripts/services.sh's herd_docker_find.
DOCKER_HOSTS = ("unix:///var/run/docker.sock", "unix:///run/herd-docker.sock")
NO_ENGINE = "skipped: no Docker engine"


class NoDockerEngine(RuntimeError):
    pass


def engine() -> tuple[docker.DockerClient, str]:
    """A client of the first engine that answers a ping, and its DOCKER_HOST; NoDockerEngine if none."""
    hosts = [h for h in (os.environ.get("DOCKER_HOST"), *DOCKER_HOSTS) if h]
    for host in dict.fromkeys(hosts):
        try:
            client = docker.DockerClient(base_url=host, timeout=60)
            client.ping()
            return client, host
        except Exception:  # noqa: BLE001 - any failure means "not this one"
            continue
    raise NoDockerEngine(f"{NO_ENGINE} (tried {', '.join(dict.fromkeys(hosts))})")


def per_call_ms(fn: Callable[[], object], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1000


def runtime_cases(client: docker.DockerClient, pfs: Path) -> tuple[dict[str, Callable[[], object]], list[Session]]:
    """DockerRuntime sessions (stream and archive transfer) for `true` and the cat-copy datum."""
    request = RunRequest(pfs_dir=pfs, env={"PACH_JOB_ID": "bench", "PACH_DATUM_ID": "d"}, timeout=60)
    cases: dict[str, Callable[[], object]] = {}
    sessions: list[Session] = []
    for transfer in ("stream", "archive"):
        runtime = DockerRuntime(client, transfer=transfer, worker_id="bench")
        for label, cmd in (("true", ("true",)), ("cat /pfs/in/x > /pfs/out/x", CAT)):
            session = runtime.open("bench", UserCode(image=IMAGE, cmd=cmd, network=False))
            sessions.append(session)
            cases[f"DockerRuntime[{transfer}] {label}"] = _datum(session, request, pfs)
    return cases, sessions


def _datum(session: Session, request: RunRequest, pfs: Path) -> Callable[[], object]:
    def run() -> object:
        for leftover in (pfs / "out").iterdir():
            leftover.unlink()
        result = session.run(request)
        assert result.exit_code == 0, result
        return result

    return run


def bare_cases(client: docker.DockerClient) -> tuple[dict[str, Callable[[], object]], list[object]]:
    """A warm container for exec_run, and containers.run(remove=True), of the same image."""
    warm = client.containers.run(IMAGE, ["sleep", "3600"], detach=True, network_mode="none", labels={"herd.bench": "1"})
    warm.exec_run(["sh", "-c", "mkdir -p /pfs/in /pfs/out && head -c 1024 /dev/zero > /pfs/in/x"])

    def run_once(cmd: list[str]) -> Callable[[], object]:
        return lambda: client.containers.run(IMAGE, cmd, remove=True, network_mode="none")

    cases: dict[str, Callable[[], object]] = {
        "bare exec_run true": lambda: warm.exec_run(["true"]),
        "bare exec_run cat /pfs/in/x > /pfs/out/x": lambda: warm.exec_run(list(CAT)),
        "bare containers.run(remove=True) true": run_once(["true"]),
    }
    return cases, [warm]


def timeout_overshoot_ms(client: docker.DockerClient, pfs: Path, transfer: str, rounds: int = 3) -> float:
    """Median ms from a 1 s timeout to run's return, for a datum that would sleep 30 s."""
    timeout = 1.0
    runtime = DockerRuntime(client, transfer=transfer, worker_id="bench")
    session = runtime.open("bench", UserCode(image=IMAGE, cmd=("sh", "-c", "sleep 30 & sleep 30"), network=False))
    samples = []
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            result = session.run(RunRequest(pfs_dir=pfs, env={}, timeout=timeout))
            assert result.timed_out, result
            samples.append((time.perf_counter() - started - timeout) * 1000)
    finally:
        session.close()
    return statistics.median(samples)


def figures(smoke: bool) -> list[dict[str, object]]:
    """Row 14 of issue 15's table (and the cat-copy datum beside it) for bench/run.py."""
    from figures import make_row

    names = ("Docker runtime, per datum, warm", "Docker runtime, per datum, warm (cat copy)")
    try:
        client, host = engine()
    except NoDockerEngine as exc:
        return [make_row(name, None, None, "ms", target, str(exc)) for name, target in zip(names, ("<= 3", "-"))]
    n = 10 if smoke else 100
    try:
        ensure_image(client, Path("/bin/busybox"))
        with tempfile.TemporaryDirectory(prefix="herd-bench-") as folder:
            pfs = pfs_folder(Path(folder))
            ours, sessions = runtime_cases(client, pfs)
            bare, containers = bare_cases(client)
            cases = {k: v for k, v in {**ours, **bare}.items() if "archive" not in k and "containers.run" not in k}
            try:
                results = measure(cases, n)
            finally:
                for session in sessions:
                    session.close()
                for container in containers:
                    container.remove(force=True)  # type: ignore[attr-defined]
            floors = floors_note(client, n, results["DockerRuntime[stream] true"])
        note = f"stream transfer; anchor: SDK exec_run into a warm container; median of {ROUNDS} rounds; {host}"
        return [
            make_row(names[0], results["DockerRuntime[stream] true"], results["bare exec_run true"], "ms", "<= 3",
                     f"true; {note}; {floors}"),
            make_row(names[1], results["DockerRuntime[stream] cat /pfs/in/x > /pfs/out/x"],
                     results["bare exec_run cat /pfs/in/x > /pfs/out/x"], "ms", "-", "cat in > out; " + note),
        ]
    finally:
        client.close()


# What a datum of the stream runtime cannot do without, each timed as one line sent to a warm
# container's stdin through the engine's attach stream and read back: the crossing alone, and
# with what each of the two loops must start per datum: the stager a file in the input's folder
# (kept from the datum before: one `dd`, forked without an exec; cpio's exec, for comparison),
# the runner the user command (ash runs `echo` itself, a path makes it fork and exec busybox).
FLOOR_LOOPS = {
    "stream crossing": 'while read -r l; do echo "$l"; done',
    "+ a fork and exec": 'while read -r l; do /bin/true; echo "$l"; done',
    "+ a dd": 'while read -r l; do dd count=0 of=/tmp/x 2>/dev/null; echo "$l"; done',
    "+ cpio of nothing": 'while read -r l; do cpio -i -d -m </dev/null 2>/dev/null; echo "$l"; done',
}


def floor_ms(client: docker.DockerClient, loop: str, n: int) -> float:
    """Median ms of a line's round trip through a warm container running `loop` (5 rounds)."""
    api = client.api
    container = api.create_container(IMAGE, ["sh", "-c", loop], stdin_open=True, network_disabled=True,
                                     labels={"herd.bench": "1"})
    try:
        api.start(container)
        sock = api.attach_socket(container, params={"stdin": 1, "stdout": 1, "stream": 1})
        channel = Channel(getattr(sock, "_sock", sock), "bench floor")

        def round_trip() -> None:
            channel.send("x\n")
            channel.read_line(time.monotonic() + 30)

        for _ in range(10):
            round_trip()
        rounds = [per_call_ms(round_trip, max(1, n // ROUNDS)) for _ in range(ROUNDS)]
        channel.close()
        return statistics.median(rounds)
    finally:
        api.remove_container(container, force=True)


def floors_note(client: docker.DockerClient, n: int, herd_ms: float) -> str:
    """The floors above, measured, and what they make of a datum: two processes, each behind a crossing."""
    ms = {name: floor_ms(client, loop, n) for name, loop in FLOOR_LOOPS.items()}
    crossing, process = ms["stream crossing"], ms["+ a fork and exec"]
    staged, cpio = ms["+ a dd"], ms["+ cpio of nothing"]
    floor = staged + process
    return (f"floors measured here (a line through a warm container's attached stdin and back): the crossing "
            f"{crossing:.2f} ms, with a busybox fork+exec {process:.2f} ms, with a dd {staged:.2f} ms (with a "
            f"cpio instead {cpio:.2f} ms: its exec is why a datum of a few plain names is staged without one); a "
            f"datum stages its inputs, then starts the user command, each behind a crossing: {floor:.2f} ms; the "
            f"other {herd_ms - floor:.2f} ms are the loops' own steps around them (runner.sh: a watcher subshell, "
            f"kill -1 and wait, the cgroup counters) and the worker, whose CPU is ~0.4 ms a datum (py-spy, "
            f"2026-12-02)")


def pfs_folder(folder: Path) -> Path:
    """A datum's /pfs: one 1 KiB input file, an empty output folder."""
    (folder / "in").mkdir()
    (folder / "out").mkdir()
    (folder / "in" / "x").write_bytes(b"x" * 1024)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="datums per fast case (slow cases: n/10)")
    parser.add_argument("--busybox", default="/bin/busybox")
    args = parser.parse_args()
    client = docker.from_env()
    ensure_image(client, Path(args.busybox))
    with tempfile.TemporaryDirectory(prefix="herd-bench-") as folder:
        pfs = pfs_folder(Path(folder))
        ours, sessions = runtime_cases(client, pfs)
        bare, containers = bare_cases(client)
        try:
            results = measure({**ours, **bare}, args.n)
        finally:
            for session in sessions:
                session.close()
            for container in containers:
                container.remove(force=True)  # type: ignore[attr-defined]
    base = results["DockerRuntime[stream] true"]
    print(f"median of {ROUNDS} rounds; engine {client.version()['Version']}")
    for name, ms in results.items():
        print(f"  {name:<58} {ms:8.2f} ms  x{ms / base:6.2f}")
    with tempfile.TemporaryDirectory(prefix="herd-bench-") as folder:
        pfs = Path(folder)
        (pfs / "in").mkdir()
        (pfs / "out").mkdir()
        for transfer in ("stream", "archive"):
            label = f"DockerRuntime[{transfer}] timeout 1 s: run returns after it"
            print(f"  {label:<58} {timeout_overshoot_ms(client, pfs, transfer):8.2f} ms")


def measure(cases: dict[str, Callable[[], object]], n: int) -> dict[str, float]:
    """Median ms per call of each case over interleaved rounds (slow cases get fewer calls)."""
    for fn in cases.values():
        fn()  # warm: page cache, first exec
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(ROUNDS):
        for name, fn in cases.items():
            slow = "stream" not in name
            samples[name].append(per_call_ms(fn, max(1, (n // 10 if slow else n) // ROUNDS)))
    return {name: statistics.median(values) for name, values in samples.items()}


if __name__ == "__main__":
    main()
