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


def emptied_for_the_next_datum(ctx: WorkerContext, folder: Path) -> Path:
    ctx.discard(folder, reuse=True)
    ctx._remover.drain()
    return ctx.pfs_dir()


def test_a_finished_datums_folder_is_emptied_and_handed_to_the_next(tmp_path: Path) -> None:
    ctx = context(tmp_path / "scratch")
    first = ctx.pfs_dir()
    (first / "in" / "sub").mkdir(parents=True)
    (first / "in" / "sub" / "f").write_text("x")
    (first / "out").mkdir()
    (first / "out" / "result").write_text("y")
    (first / "out" / "locked").mkdir()
    (first / "out" / "locked" / "g").write_text("z")
    (first / "out" / "locked").chmod(0o500)  # user code may leave a folder it cannot be emptied of
    second = emptied_for_the_next_datum(ctx, first)
    # The folder, its input folder and out/ stay (made and freed per datum they cost more than a
    # trivial datum on ext4 without a journal); everything in them is gone.
    assert second == first
    assert sorted(p.name for p in second.iterdir()) == ["in", "out"]
    assert list((second / "in").iterdir()) == [] and list((second / "out").iterdir()) == []
    ctx.close()
    assert list((tmp_path / "scratch").iterdir()) == []


def test_a_folder_not_reused_is_removed(tmp_path: Path) -> None:
    ctx = context(tmp_path / "scratch")
    first = ctx.pfs_dir()
    ctx.discard(first)  # user code may still run (cancelled, or the worker is stopping)
    ctx._remover.drain()
    assert not first.exists()
    assert ctx.pfs_dir() != first
    ctx.close()


@pytest.mark.parametrize("tamper", ["chmod", "xattr", "symlink", "file", "out-chmod", "out-xattr", "out-symlink"])
def test_what_user_code_changed_is_never_handed_on(tmp_path: Path, tamper: str) -> None:
    # Given a datum whose user code (no sandbox: HERD_LOCAL_ISOLATION=rewrite) changed its folder
    ctx = context(tmp_path / "scratch")
    folder = ctx.pfs_dir()
    (folder / "in").mkdir()
    (folder / "in" / "f").write_text("input")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious").write_text("keep")
    if tamper == "chmod":
        (folder / "in").chmod(0o777)
    elif tamper == "xattr":
        os.setxattr(folder / "in", "user.herd-test", b"planted")
    elif tamper == "symlink":
        os.symlink(elsewhere, folder / "out")
    elif tamper.startswith("out-"):
        (folder / "out").mkdir()
        (folder / "out" / "result").write_text("output")
        if tamper == "out-chmod":
            (folder / "out").chmod(0o777)
        elif tamper == "out-xattr":
            os.setxattr(folder / "out", "user.herd-test", b"planted")
        else:
            os.symlink(elsewhere, folder / "out" / "link")
    else:
        (folder / "planted").write_text("for the next datum")
    # When the folder is emptied for the next datum
    reused = emptied_for_the_next_datum(ctx, folder)
    # Then nothing of it remains, and a link's target is untouched
    assert all(p.is_dir() and not p.is_symlink() for p in reused.iterdir())
    assert [p for p in reused.rglob("*") if not p.is_dir()] == []
    for kept in [reused, *reused.iterdir()]:
        assert (kept.stat().st_mode & 0o7777) == (folder.parent.stat().st_mode & 0o7777)
        assert os.listxattr(kept) == []
    assert (elsewhere / "precious").read_text() == "keep"
    ctx.close()


def test_a_folder_whose_own_bits_changed_is_removed_not_reused(tmp_path: Path) -> None:
    ctx = context(tmp_path / "scratch")
    folder = ctx.pfs_dir()
    folder.chmod(0o777)
    nxt = emptied_for_the_next_datum(ctx, folder)
    assert nxt != folder and not folder.exists()
    ctx.close()
