"""CLI start-up: the wall time of `herd --help` and `herd list-repo` on a local store.

Usage: .venv/bin/python bench/startup.py [--smoke]

Each round runs every command once, interleaved (herd, then the floors), so a busy machine
slows them alike; the figures are medians of the rounds. The anchor is the issue's: a Go CLI
answers in ~0.02 s (a constant, not measured here). The Python floors are measured and go in
the notes: the bare interpreter (`python -S -c pass`), `import click`, and what list-repo
cannot do without: click + pydantic-settings (the settings classes) + herd's storage.

`figures(smoke)` gives row 1 of issue 15's table to bench/run.py.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # bench/herd_cli.py, after herd's packages
from herd_cli import cli_environment, compile_herd, herd_command  # noqa: E402

GO_CLI_SECONDS = 0.02  # issue 15's anchor: a Go CLI (pachctl) answers in about this
TARGET = "<= 0.15"


def commands() -> dict[str, list[str]]:
    herd, py = herd_command(), sys.executable
    return {
        "help": [*herd, "--help"],
        "list-repo": [*herd, "list-repo"],
        "python -S": [py, "-S", "-c", "pass"],
        "import click": [py, "-c", "import click"],
        # The configuration library the brief prescribes (HERD_* through pydantic-settings): its
        # import alone (pydantic, its model machinery and plugin scan, asyncio) is over 0.15 s here.
        "import pydantic_settings": [py, "-c", "import pydantic_settings"],
        # What list-repo needs whatever herd does: the settings (pydantic-settings) and storage.
        "list-repo floor": [py, "-c", "import click, pydantic_settings, storage.repos"],
    }


def make_store(store: Path) -> None:
    """A local store holding one repo with one commit, so list-repo prints a row."""
    done = subprocess.run([*herd_command(), "create-repo", "images"], env=cli_environment(store.as_uri()),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"herd create-repo failed: {done.stderr.strip()}")


def measure(rounds: int, store: Path) -> dict[str, list[float]]:
    """Wall seconds of each command per round, the commands interleaved within a round."""
    env, cmds = cli_environment(store.as_uri()), commands()
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for name, argv in cmds.items():  # one warm-up each: page cache and .pyc files
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    for _ in range(rounds):
        for name, argv in cmds.items():
            t0 = time.perf_counter()
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - t0)
    return times


def figures(smoke: bool) -> list[dict[str, object]]:
    """Row 1 of issue 15's table: `herd list-repo` and `herd --help`, medians of interleaved rounds."""
    from figures import make_row

    rounds = 2 if smoke else 20
    compile_herd()
    with tempfile.TemporaryDirectory(prefix="herd-bench-startup-") as tmp:
        store = Path(tmp) / "store"
        store.mkdir()
        make_store(store)
        times = measure(rounds, store)
    med = {name: statistics.median(values) for name, values in times.items()}
    floors = (f"python -S {med['python -S']:.3f} s, import click {med['import click']:.3f} s, "
              f"import pydantic_settings {med['import pydantic_settings']:.3f} s, "
              f"click+pydantic_settings+storage {med['list-repo floor']:.3f} s; herd's settings come "
              f"through pydantic-settings, whose import alone is this row's floor")
    size = f"{rounds} rounds; " if smoke else ""
    rows = [
        make_row("herd list-repo, local store, wall", med["list-repo"], GO_CLI_SECONDS, "s", TARGET,
                 f"{size}anchor: a Go CLI (issue 15); floors: {floors}; median of {rounds}"),
        make_row("herd --help, wall", med["help"], GO_CLI_SECONDS, "s", TARGET,
                 f"{size}anchor: a Go CLI (issue 15); floors: python -S {med['python -S']:.3f} s, "
                 f"import click {med['import click']:.3f} s; median of {rounds}"),
    ]
    for row in rows:
        row["met"] = None if smoke else row["met"]  # a smoke run's figures judge nothing
    return rows


def main() -> None:
    smoke = "--smoke" in sys.argv[1:]
    for row in figures(smoke):
        herd, anchor = row["herd"], row["anchor"]
        print(f"{row['figure']:<36} herd {herd:.3f} s   anchor {anchor:.3f} s   target {row['target']}"
              f"   met {row['met']}\n    {row['note']}")


if __name__ == "__main__":
    main()
