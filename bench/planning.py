"""glob-file over a big commit: `herd glob-file in master '/*/*'` on 100,000 files, local store.

Usage: .venv/bin/python bench/planning.py [--smoke]

herd: the CLI end to end (a fresh process: start-up, the commit's manifest read and verified,
the glob matched, the table printed to /dev/null). Anchor (issue 15): a fresh Python process
that walks the same 100,000 files as a folder tree with os.walk, keeps those fnmatch matches and
prints each with its size (one stat each, as glob-file shows sizes). Both run interleaved per
round; the figures are medians. The note says where herd's time goes, measured in-process.

(The other planning figure, commit manifest -> planned datums, is bench/pipeline.py's.)
`figures(smoke)` gives row 6 of issue 15's table to bench/run.py.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # herd's packages, run alone
sys.path.append(str(Path(__file__).resolve().parent))  # bench/herd_cli.py
from herd_cli import cli_environment, compile_herd, herd_command  # noqa: E402

PATTERN = "/*/*"
ANCHOR = """
import fnmatch, os, sys
root, pattern = sys.argv[1], sys.argv[2]
lines = []
for folder, dirs, files in os.walk(root):
    rel = folder[len(root):]
    for name in dirs + files:
        path = rel + "/" + name
        if fnmatch.fnmatchcase(path, pattern):
            lines.append(f"{path}   {os.stat(folder + '/' + name).st_size}B")
print("\\n".join(sorted(lines)))
"""


def paths(n: int) -> list[str]:
    """n files in 100 folders: /d000/f000000.txt ..."""
    return [f"/d{i % 100:03d}/f{i:06d}.txt" for i in range(n)]


def make_store(store: Path, n: int) -> None:
    """Repo `in` whose master holds n files (one content: the blobs do not matter here)."""
    from storage.local import LocalObjectStore
    from storage.repos import Pfs

    pfs = Pfs(LocalObjectStore(store))
    pfs.create_repo("in")
    pfs.put_files("in", "master", [(path, b"x\n") for path in paths(n)])


def make_tree(tree: Path, n: int) -> None:
    for folder in {path.rpartition("/")[0] for path in paths(n)}:
        (tree / folder.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for path in paths(n):
        (tree / path.lstrip("/")).write_bytes(b"x\n")


def where_time_goes(store: Path) -> str:
    """glob-file's steps timed in this process (after start-up), for the note."""
    from scheduler import render
    from scheduler.pfs_api import HerdPfs
    from storage.local import LocalObjectStore

    pfs = HerdPfs(LocalObjectStore(store))
    t0 = time.perf_counter()
    pfs.read_tree(pfs.inspect_commit("in", "master"))
    t1 = time.perf_counter()
    infos = pfs.glob_file("in", "master", PATTERN)
    t2 = time.perf_counter()
    render.table(render.FILE_HEADERS, (render.file_row(info) for info in infos))
    t3 = time.perf_counter()
    return (f"in-process: manifest read+verify {t1 - t0:.2f} s, glob_file (that read again, match, "
            f"FileInfo models) {t2 - t1:.2f} s, table {t3 - t2:.2f} s")


def measure(rounds: int, store: Path, tree: Path) -> tuple[list[float], list[float]]:
    env = cli_environment(store.as_uri())
    herd_argv = [*herd_command(), "glob-file", "in", "master", PATTERN]
    anchor_argv = [sys.executable, "-c", ANCHOR, str(tree), PATTERN]
    herd, anchor = [], []
    for argv in (herd_argv, anchor_argv):  # warm-up: page cache, .pyc
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    for _ in range(rounds):
        for argv, out in ((herd_argv, herd), (anchor_argv, anchor)):
            t0 = time.perf_counter()
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
            out.append(time.perf_counter() - t0)
    return herd, anchor


def figures(smoke: bool) -> list[dict[str, object]]:
    """Row 6 of issue 15's table."""
    from figures import make_row

    n, rounds = (500, 1) if smoke else (100_000, 5)
    compile_herd()
    with tempfile.TemporaryDirectory(prefix="herd-bench-glob-") as tmp:
        store, tree = Path(tmp) / "store", Path(tmp) / "tree"
        make_store(store, n)
        make_tree(tree, n)
        herd, anchor = measure(rounds, store, tree)
        steps = where_time_goes(store)
    size = f"N={n:,}; " if smoke else ""
    row = make_row("glob-file /*/* over 100,000 files", statistics.median(herd), statistics.median(anchor), "s",
                   ">= 1.0x", f"{size}CLI end to end vs os.walk+fnmatch+stat in a fresh python; {steps}; "
                   f"median of {rounds}")
    row["met"] = None if smoke else row["met"]
    return [row]


def main() -> None:
    sys.path.append(str(Path(__file__).resolve().parent))  # bench/figures.py, after herd's packages
    for row in figures("--smoke" in sys.argv[1:]):
        print(f"{row['figure']}: herd {row['herd']:.2f} s, anchor {row['anchor']:.2f} s, "
              f"ratio {row['ratio']:.2f}x (target {row['target']})\n    {row['note']}")


if __name__ == "__main__":
    main()
