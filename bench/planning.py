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


def where_time_goes(store: Path, herd_wall: float, anchor_wall: float) -> str:
    """glob-file's steps timed in this process (after start-up), for the note, and the floor
    that one pydantic model per file (a manifest entry, then a FileInfo) sets on its own."""
    import json

    from scheduler import render
    from scheduler.glob import match_nodes
    from scheduler.pfs_api import HerdPfs
    from storage.collector import collector_paused
    from storage.layout import manifest_key
    from storage.local import LocalObjectStore

    pfs = HerdPfs(LocalObjectStore(store))
    commit = pfs.inspect_commit("in", "master")
    t0 = time.perf_counter()
    data = pfs.files.commits.objects.get(manifest_key(commit.manifest))
    t1 = time.perf_counter()
    manifest = pfs.files.snapshot("in", "master")[1]  # read again, verified, parsed: cached after
    t2 = time.perf_counter()
    with collector_paused():  # as herd parses it
        json.loads(data)
    t3 = time.perf_counter()
    nodes = match_nodes(PATTERN, manifest.files)
    t4 = time.perf_counter()
    infos = pfs.glob_file("in", "master", PATTERN)  # the manifest from the cache
    t5 = time.perf_counter()
    render.table(render.FILE_HEADERS, (render.file_row(info) for info in infos))
    t6 = time.perf_counter()
    # snapshot read the bytes again: what it took past that read is the hash check and the parse
    read, parse, loads, match = t1 - t0, t2 - t1 - (t1 - t0), t3 - t2, t4 - t3
    models, table = t5 - t4 - match, t6 - t5  # glob_file matched again, then made the FileInfos
    entries = max(0.0, parse - loads)  # past json.loads: pydantic's validation, a FileEntry model per file
    models = max(0.0, models)
    rest = max(0.0, herd_wall - read - parse - match - models - table)
    floor = entries + models
    return (f"in-process, {len(nodes):,} matches: manifest read {read:.3f} s, verified and parsed {parse:.2f} s "
            f"(json.loads {loads:.2f} s, a FileEntry model per file {entries:.2f} s), glob match {match:.2f} s, "
            f"a FileInfo model per match {models:.2f} s, rows and table {table:.2f} s; the rest of the CLI's "
            f"{herd_wall:.2f} s (start-up, imports, printing) {rest:.2f} s; floor: the two models per file "
            f"alone take {floor:.2f} s, {floor / anchor_wall:.2f}x the anchor's whole run, while the "
            f"manifest holds a pydantic model per file")


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
        steps = where_time_goes(store, statistics.median(herd), statistics.median(anchor))
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
