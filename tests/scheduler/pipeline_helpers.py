"""Shared pieces of the pipeline tests: Pachyderm's documented examples adapted to shell tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scheduler.cli.wiring import embedded_dispatcher
from scheduler.loop import Scheduler
from scheduler.pipelines import Pipelines
from storage.local import LocalObjectStore
from storage.repos import Pfs

# One datum per top-level file, copied to the output: the smallest pipeline the scheduler's own
# tests (restart, metrics, lifecycle) run to its end.
COPY_SPEC = {
    "pipeline": {"name": "copy"},
    "transform": {"cmd": ["sh", "-c", "cp $in /pfs/out/"]},
    "input": {"pfs": {"repo": "in", "glob": "/*"}},
}


def copy_pipeline(folder: Path, files: int = 5, spec: dict[str, Any] | None = None) -> Pfs:
    """A local store in `folder`: repo `in` with /f0../f4 (`files` of them) on master, and the
    copy pipeline (or `spec`) over it."""
    pfs = Pfs(LocalObjectStore(folder))
    pfs.create_repo("in")
    pfs.put_files("in", "master", [(f"/f{i}", f"{i}\n".encode()) for i in range(files)])
    Pipelines(pfs).create(dict(spec or COPY_SPEC))
    return pfs


def run_to_end(pfs: Pfs) -> None:
    """Run every job owed to its end, in this process (two datum threads), as the embedded default does."""
    dispatcher = embedded_dispatcher(pfs.objects, threads=2)
    try:
        Scheduler(pfs, dispatcher, parallelism=2).run_until_idle(timeout=120)
    finally:
        dispatcher.close()

# Pachyderm's word count (map: one datum per file; reduce: one datum for the whole repo),
# with the Go programs replaced by POSIX shell tools.
WORDCOUNT_MAP = {
    "pipeline": {"name": "map"},
    "transform": {
        "image": "busybox",
        "cmd": ["sh"],
        "stdin": [
            "for f in $(find /pfs/words -type f); do",
            "  tr -cs 'A-Za-z' '\\n' < \"$f\" | tr 'A-Z' 'a-z' | grep -v '^$' | sort | uniq -c |",
            "  while read n w; do echo \"$n\" > /pfs/out/\"$w\"; done",
            "done",
        ],
    },
    "input": {"pfs": {"repo": "words", "glob": "/*"}},
}

WORDCOUNT_REDUCE = {
    "pipeline": {"name": "reduce"},
    "transform": {
        "image": "busybox",
        "cmd": ["sh"],
        "stdin": [
            "for f in /pfs/map/*; do",
            "  [ -f \"$f\" ] || continue",
            "  awk '{s += $1} END {print s}' \"$f\" > /pfs/out/$(basename \"$f\")",
            "done",
        ],
    },
    "input": {"pfs": {"repo": "map", "glob": "/"}},
}

# Pachyderm's opencv example: "edges" per image, then "montage" crossing the raw images with
# the edges stage's output. Edge detection becomes an uppercase transform.
EDGES = {
    "pipeline": {"name": "edges"},
    "transform": {
        "image": "busybox",
        "cmd": ["sh", "-c", "for f in $(find /pfs/images -type f); do tr a-z A-Z < $f > /pfs/out/$(basename $f); done"],
    },
    "input": {"pfs": {"repo": "images", "glob": "/*"}},
}

MONTAGE = {
    "pipeline": {"name": "montage"},
    "transform": {
        "image": "busybox",
        "cmd": ["sh", "-c", "cat $(find /pfs/images /pfs/edges -type f | sort) > /pfs/out/montage"],
    },
    "input": {
        "cross": [
            {"pfs": {"glob": "/", "repo": "images"}},
            {"pfs": {"glob": "/", "repo": "edges"}},
        ]
    },
}


def read(pfs: Pfs, repo: str, ref: str, path: str) -> bytes:
    with pfs.open_file(repo, ref, path) as stream:
        return stream.read()


def files_of(pfs: Pfs, repo: str, ref: str = "master") -> dict[str, bytes]:
    commit = pfs.inspect_commit(repo, ref)
    manifest = pfs.read_manifest(commit)
    return {path: read(pfs, repo, commit.id, path) for path in manifest.files}
