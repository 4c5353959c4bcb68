"""bench/storage.py's row 5 (put-file -r of many small files against cp -r) measures the packed
path it claims to, on a few hundred files: the real herd CLI and a real `cp -r`. No timing is
asserted (speed is the bench's business)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.bench.loader import load_bench

storage_bench = load_bench("storage")


def test_the_tree_is_the_asked_number_of_1_kib_files_in_100_folders(tmp_path: Path) -> None:
    root = storage_bench.make_small_tree(tmp_path / "tree", 250)
    files = [Path(top, name) for top, _, names in os.walk(root) for name in names]
    assert len(files) == 250
    assert len({f.parent for f in files}) == storage_bench.SMALL_FOLDERS
    assert {f.stat().st_size for f in files} == {storage_bench.SMALL_BYTES}
    assert len({f.read_bytes() for f in files}) == 250  # random: nothing for dedupe to skip


def test_row_5_alone_times_both_sides_and_sees_packs_not_blobs() -> None:
    rows = storage_bench.figures(True, rounds=1, files=300, only=("small-files",))
    assert len(rows) == 1
    (row,) = rows
    assert row["figure"] == "put-file -r 300 small files, local"
    assert row["unit"] == "s" and row["target"] == storage_bench.TARGET_SMALL
    assert row["herd"] > 0 and row["anchor"] > 0
    assert row["met"] is None  # smoke: no target judged
    assert "1 pack(s), 0 blob file(s)" in row["note"]
    assert "NOT the packed path" not in row["note"]
