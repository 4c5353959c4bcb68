"""What a datum's user code wrote to /pfs/out, wherever its runtime put it: in the RunResult
(`outputs`, read in memory) or under `<pfs_dir>/out` (laid out on disk), never both."""

from __future__ import annotations

from pathlib import Path

from worker.runtime import RunResult


def written(result: RunResult, pfs: Path) -> dict[str, bytes]:
    """The outputs by their path below /pfs/out ('a/b')."""
    out = pfs / "out"
    on_disk = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} \
        if out.is_dir() else {}
    if result.outputs is not None:
        assert on_disk == {}, "outputs both in the result and on disk"
        return dict(result.outputs)
    return on_disk
