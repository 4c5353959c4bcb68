"""Scratch folders: a fresh one per datum, none left after a context closes or its process dies."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from storage.objects import MemoryObjectStore
from worker.context import SCRATCH_LOCK, WorkerContext, local_root
from worker.process_io import RunCancelled
from worker.settings import WorkerSettings
from worker.staging import clear_pfs


def context(root: Path) -> WorkerContext:
    return WorkerContext(MemoryObjectStore(), WorkerSettings(scratch=str(root)), runtime="local")


def test_each_datum_gets_a_fresh_folder_and_close_removes_them_all(tmp_path: Path) -> None:
    root = tmp_path / "scratch"
    ctx = context(root)
    first, second = ctx.pfs_dir(), ctx.pfs_dir()
    assert first != second and first.parent == second.parent and root in first.parents
    assert list(first.iterdir()) == [] and list(second.iterdir()) == []
    (first / "out").mkdir()
    (first / "out" / "left").write_text("x")
    clear_pfs(second)  # what process_batch does after each datum
    assert not second.exists()
    ctx.close()
    assert list(root.iterdir()) == []
    with pytest.raises(RunCancelled):
        ctx.pfs_dir()


def test_folders_of_dead_processes_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    # Given the folder of a process that died (lock file, nobody holds it), one of a live
    # process (lock held) and a folder herd did not make
    root = tmp_path / "scratch"
    dead, live, foreign = root / "dead", root / "live", root / "foreign"
    for folder in (dead, live, foreign):
        (folder / "datum" / "out").mkdir(parents=True)
    (dead / SCRATCH_LOCK).touch()
    (dead / "datum" / "out").chmod(0o500)
    holder = os.open(live / SCRATCH_LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        # When a new context makes its first datum folder
        ctx = context(root)
        ctx.pfs_dir()
        # Then only the dead process's folder is gone
        assert not dead.exists() and live.exists() and foreign.exists()
        ctx.close()
    finally:
        os.close(holder)


def test_local_root_sees_through_to_the_folder(tmp_path: Path) -> None:
    from storage.local import LocalObjectStore

    assert local_root(LocalObjectStore(tmp_path / "my store")) == tmp_path / "my store"
    assert local_root(MemoryObjectStore()) is None
