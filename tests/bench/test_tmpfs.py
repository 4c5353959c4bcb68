"""bench/tmpfs.py: the fast folder and the create probe that row 12's note prints."""

from __future__ import annotations

from pathlib import Path

from tests.bench.loader import load_bench

tmpfs = load_bench("tmpfs")


def test_create_cost_times_real_creates_and_keeps_the_files(tmp_path: Path) -> None:
    cost = tmpfs.create_cost(tmp_path, count=50)
    assert 0 < cost < 1.0
    (probe,) = tmp_path.iterdir()  # a new folder of its own
    assert sorted(int(p.name) for p in probe.iterdir()) == list(range(50))  # not deleted: see its docstring
    assert tmpfs.create_cost(tmp_path, count=5) > 0  # a second probe beside the first
    assert len(list(tmp_path.iterdir())) == 2


def test_fast_folder_is_removed_after() -> None:
    with tmpfs.fast_folder("herd-test-") as folder:
        (folder / "x").write_text("x")
        kept = folder
    assert not kept.exists()
