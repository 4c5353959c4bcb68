"""Per-datum overhead of ProcessRuntime against a bare subprocess, measured in the same run.

    .venv/bin/python bench/runtime_local.py [--n 300] [--modes bwrap,unshare,rewrite]

Rounds interleave the three measurements so machine noise hits each alike; the medians of the
rounds are printed with their ratio to `subprocess.run(["/bin/true"])`. Then, per mode, how soon
a datum's timeout ends it (past the timeout) and how soon a datum returns when it leaves a
background child behind: the figures tests/worker/test_process_runtime.py used to bound. `figures(smoke)` gives bench/run.py one
extra row (no target in issue 15's table: the embedded datums figure, row 8, covers it).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.process_runtime import Isolation, ProcessRuntime, detect_isolation  # noqa: E402
from worker.runtime import RunRequest, Session, UserCode  # noqa: E402

ROUNDS = 10


def per_call_ms(fn: Callable[[], object], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1000


def session(mode: Isolation, cmd: tuple[str, ...]) -> Session:
    return ProcessRuntime(mode).open("bench", UserCode(image="", cmd=cmd))


def bench_mode(mode: Isolation, n: int, pfs: Path) -> dict[str, float]:
    """Median ms per datum of bare /bin/true, `true` and a cat-copy datum under `mode`."""
    true_session = session(mode, ("true",))
    cat_session = session(mode, ("sh", "-c", "cat /pfs/in/x > /pfs/out/x"))
    request = RunRequest(pfs_dir=pfs, env={"PACH_JOB_ID": "bench"})
    bare_cat = f"cat {pfs}/in/x > {pfs}/out/bare"
    cases: dict[str, Callable[[], object]] = {
        "bare subprocess.run(['/bin/true'])": lambda: subprocess.run(["/bin/true"]),
        "bare subprocess.run(['sh','-c','cat x > y'])": lambda: subprocess.run(["sh", "-c", bare_cat]),
        "ProcessRuntime true": lambda: true_session.run(request),
        "ProcessRuntime sh -c 'cat /pfs/in/x > /pfs/out/x'": lambda: cat_session.run(request),
    }
    for fn in cases.values():  # warm: sandbox start, page cache
        fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(ROUNDS):
        for name, fn in cases.items():
            samples[name].append(per_call_ms(fn, max(1, n // ROUNDS)))
    true_session.close()
    cat_session.close()
    return {name: statistics.median(values) for name, values in samples.items()}


def latency_ms(mode: Isolation, pfs: Path, script: str, timeout: float | None, rounds: int = 5) -> float:
    """Median wall-clock ms of a datum running `script`, in a session already warm (sandbox up)."""
    runner = session(mode, ("sh", "-c", script))
    request = RunRequest(pfs_dir=pfs, env={}, timeout=timeout)
    samples = []
    try:
        runner.run(request)
        for _ in range(rounds):
            started = time.perf_counter()
            runner.run(request)
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        runner.close()
    return statistics.median(samples)


def bench_latencies(mode: Isolation, pfs: Path) -> None:
    timeout = 0.5
    killed = latency_ms(mode, pfs, "sleep 30 & sleep 30", timeout=timeout)
    left_child = latency_ms(mode, pfs, "(sleep 30) & echo done", timeout=None)
    print(f"  {'timeout 0.5 s: kill lands after the timeout':<52} {killed - timeout * 1000:7.2f} ms")
    print(f"  {'leader exits, child sleeps on: run returns after':<52} {left_child:7.2f} ms")


def figures(smoke: bool) -> list[dict[str, object]]:
    """An extra row for bench/run.py: ProcessRuntime's cost per datum against a bare subprocess."""
    from figures import make_row

    mode = detect_isolation()
    n = 20 if smoke else 300
    with tempfile.TemporaryDirectory(prefix="herd-bench-") as folder:
        pfs = Path(folder)
        (pfs / "in").mkdir()
        (pfs / "out").mkdir()
        (pfs / "in" / "x").write_bytes(b"x" * 1024)
        results = bench_mode(mode, n, pfs)
    return [
        make_row(
            "local runtime, per datum, warm (sh -c cat)",
            results["ProcessRuntime sh -c 'cat /pfs/in/x > /pfs/out/x'"],
            results["bare subprocess.run(['sh','-c','cat x > y'])"],
            "ms",
            "-",
            f"isolation {mode.value}; anchor: bare subprocess.run; median of {ROUNDS} rounds of {n // ROUNDS}",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="datums per measurement")
    parser.add_argument("--modes", default="", help="comma-separated isolation modes (default: the detected one)")
    args = parser.parse_args()
    modes = [Isolation(m) for m in args.modes.split(",") if m] or [detect_isolation()]
    print(f"detected isolation: {detect_isolation().value}")
    with tempfile.TemporaryDirectory(prefix="herd-bench-") as folder:
        pfs = Path(folder)
        (pfs / "in").mkdir()
        (pfs / "out").mkdir()
        (pfs / "in" / "x").write_bytes(b"x" * 1024)
        for mode in modes:
            results = bench_mode(mode, args.n, pfs)
            base = next(iter(results.values()))
            print(f"\n[{mode.value}] median of {ROUNDS} rounds, {args.n} datums each")
            for name, ms in results.items():
                print(f"  {name:<52} {ms:7.2f} ms  x{ms / base:5.2f}")
            bench_latencies(mode, pfs)


if __name__ == "__main__":
    main()
