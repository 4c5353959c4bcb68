"""LocalObjectStore's create-only writes: an unnamed O_TMPFILE linked to the key's name, or a
named temp file where the file system has no O_TMPFILE. The shared semantics (one winner of a
race, chunks joined, refusals) are tests/contract/test_object_store.py's, on both paths here."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from storage.errors import InvalidArgument
from storage.local import TEMP_PREFIX, LocalObjectStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["unnamed", "named"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LocalObjectStore:
    local = LocalObjectStore(tmp_path / "store")
    if request.param == "named":
        local._unnamed_temp_files = False
    return local


def test_this_machine_writes_unnamed_temp_files(tmp_path: Path) -> None:
    # Given this machine's temp folder (ext4 or tmpfs, both with O_TMPFILE) and /proc
    store = LocalObjectStore(tmp_path)
    # When a key is created; Then the unnamed path was taken and stays on
    assert store.put_if_absent("a/b", b"x") is True
    assert store._unnamed_temp_files is True
    assert store.get("a/b") == b"x"


def test_create_only_writes_once_and_keeps_the_first_body(store: LocalObjectStore) -> None:
    assert store.put_if_absent("k/1", b"first") is True
    assert store.put_if_absent("k/1", b"second") is False
    assert store.put_chunks_if_absent("k/1", [b"third"]) is False
    assert store.get("k/1") == b"first"
    # And a key named by a folder of other keys counts as there
    assert store.put_if_absent("k", b"x") is False
    assert list(store.list("")) == ["k/1"]


def test_created_files_have_the_mode_a_named_write_gives(store: LocalObjectStore, tmp_path: Path) -> None:
    store.put_if_absent("m/created", b"x")
    store.put("m/replaced", b"x")
    created = (tmp_path / "store" / "m" / "created").stat().st_mode
    assert created == (tmp_path / "store" / "m" / "replaced").stat().st_mode


def test_no_name_shows_while_an_unnamed_write_is_under_way(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("f/other", b"o")
    seen: list[list[str]] = []

    def chunks() -> Iterator[bytes]:
        yield b"part one "
        seen.append(sorted(os.listdir(tmp_path / "f")))
        yield b"part two"

    assert store.put_chunks_if_absent("f/new", chunks()) is True
    assert seen == [["other"]]
    assert store.get("f/new") == b"part one part two"


def test_a_write_that_fails_midway_leaves_no_key_and_no_temp_file(store: LocalObjectStore, tmp_path: Path) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"half"
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        store.put_chunks_if_absent("w/key", chunks())
    assert not store.exists("w/key")
    assert list(store.incomplete_uploads()) == []
    assert [name for name in os.listdir(tmp_path / "store" / "w") if name.startswith(TEMP_PREFIX)] == []
    # And the key can still be created afterwards
    assert store.put_if_absent("w/key", b"whole") is True


def test_a_folder_pruned_while_the_file_is_written_is_made_again(store: LocalObjectStore, tmp_path: Path) -> None:
    # Given a write into a new folder, and a delete of the folder's last key pruning it meanwhile
    store.put("p/q/last", b"l")

    def chunks() -> Iterator[bytes]:
        yield b"body"
        store.delete("p/q/last")  # rmdir of p/q (and p) succeeds only while the write holds no name there

    # When the write ends; Then the key is there all the same, with its whole body
    assert store.put_chunks_if_absent("p/q/new", chunks()) is True
    assert store.get("p/q/new") == b"body"
    assert list(store.list("p/")) == ["p/q/new"]


def test_a_key_under_another_key_is_refused_naming_it(store: LocalObjectStore) -> None:
    store.put("file", b"x")
    with pytest.raises(InvalidArgument, match="'file/below' lies under another key"):
        store.put_if_absent("file/below", b"y")
    assert store.get("file") == b"x"


def test_many_writers_of_one_key_have_one_winner(store: LocalObjectStore) -> None:
    bodies = [f"writer {i}".encode() * 1000 for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda body: store.put_if_absent("race/key", body), bodies))
    assert won.count(True) == 1
    assert store.get("race/key") == bodies[won.index(True)]


def refuse_o_tmpfile(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """os.open raises OSError(code) for O_TMPFILE, as a file system without it would."""
    real_open = os.open

    def refusing(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(code, os.strerror(code))
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refusing)


def test_without_o_tmpfile_the_store_falls_back_to_named_temp_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a file system that refuses O_TMPFILE (as vfat or an old overlayfs do: EOPNOTSUPP)
    refuse_o_tmpfile(monkeypatch, errno.EOPNOTSUPP)
    store = LocalObjectStore(tmp_path)
    # When keys are created; Then they are, through named temp files, and the store remembers
    assert store.put_if_absent("a/1", b"x") is True
    assert store._unnamed_temp_files is False
    assert store.put_if_absent("a/1", b"y") is False
    assert store.put_chunks_if_absent("a/2", [b"p", b"q"]) is True
    assert (store.get("a/1"), store.get("a/2")) == (b"x", b"pq")
    assert list(store.incomplete_uploads()) == []


def test_other_errors_of_the_unnamed_open_are_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a store whose first create found unnamed temp files working
    store = LocalObjectStore(tmp_path)
    assert store.put_if_absent("a/0", b"x") is True
    # When a later one fails for another reason; Then that error is raised and nothing made
    refuse_o_tmpfile(monkeypatch, errno.EDQUOT)
    with pytest.raises(OSError, match="quota"):
        store.put_if_absent("a/1", b"x")
    assert store._unnamed_temp_files is True
    assert not store.exists("a/1")
    assert list(store.list("")) == ["a/0"]


def test_where_proc_cannot_name_an_unnamed_file_named_temp_files_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a sandbox whose /proc refuses linkat of a descriptor (O_TMPFILE itself works)
    real_link = os.link

    def no_proc_links(src: str, dst: str, *args: object, **kwargs: object) -> None:
        if str(src).startswith("/proc/self/fd/"):
            raise PermissionError(errno.EPERM, "Operation not permitted")
        real_link(src, dst, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", no_proc_links)
    store = LocalObjectStore(tmp_path)
    # When keys are created; Then the first create's probe finds out, and named files are used
    assert store.put_if_absent("b/1", b"x") is True
    assert store._unnamed_temp_files is False
    assert store.put_chunks_if_absent("b/1", [b"y"]) is False
    assert store.get("b/1") == b"x"
    # And the probe left nothing behind
    assert list(store.incomplete_uploads()) == []
    assert sorted(os.listdir(tmp_path)) == ["b"]


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from storage.local import LocalObjectStore

    def chunks():
        yield b"x" * 65536
        print("writing", flush=True)
        time.sleep(60)
        yield b"never"

    LocalObjectStore(sys.argv[1]).put_chunks_if_absent("jobs/j/attempts/d/1", chunks())
""")


def test_a_writer_killed_midway_leaves_nothing(tmp_path: Path) -> None:
    # Given a process killed (SIGKILL) in the middle of a create-only write
    root = tmp_path / "store"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(root), str(ROOT)],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    assert writer.stdout.readline() == "writing\n"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    writer.stdout.close()
    # Then neither the key nor a temp file is left: nothing for fsck or gc to clear up
    store = LocalObjectStore(root)
    assert not store.exists("jobs/j/attempts/d/1")
    assert list(store.incomplete_uploads()) == []
    assert os.listdir(root / "jobs" / "j" / "attempts" / "d") == []
    # And the key can be created as if the write had never started
    assert store.put_if_absent("jobs/j/attempts/d/1", b"claim") is True
