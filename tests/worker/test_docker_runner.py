"""worker/docker_runner.py's pure parts: which inputs go as `E` entries, and their bytes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from storage.errors import InvalidPath
from worker.docker_runner import (
    SHELL_STAGE_ENTRIES,
    FolderInputs,
    MemoryInputs,
    cpio_chunks,
    entry_chunks,
    plain_entries,
    write_inputs_tar,
)


def datum(root: Path, files: dict[str, bytes]) -> FolderInputs:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "out").mkdir(exist_ok=True)
    return FolderInputs(root)


def test_a_few_plain_entries_go_as_lines_and_exact_bytes(tmp_path: Path) -> None:
    root = datum(tmp_path, {"in/a/x=1.txt": b"one\n", "in/empty": b""})
    (tmp_path / "out" / "ignored").write_bytes(b"outputs are never staged")
    entries = plain_entries(root)
    assert entries == [("in", "dir", 0), ("in/a", "dir", 0), ("in/a/x=1.txt", "file", 4), ("in/empty", "file", 0)]
    assert b"".join(entry_chunks(root, entries)) == (
        b"d 0 in\nd 0 in/a\nf 4 in/a/x=1.txt\none\nf 0 in/empty\n"
    )


def test_more_entries_than_the_bound_go_as_cpio(tmp_path: Path) -> None:
    files = {f"in/{i}": b"x" for i in range(SHELL_STAGE_ENTRIES)}  # with in/ itself: one too many
    assert plain_entries(datum(tmp_path, files)) is None


@pytest.mark.parametrize("name", [
    "a b", "-rf", ".hidden", "x\ny", "tab\t", "quote'", 'dq"', "dollar$x", "back\\slash", "semi;colon",
    "star*", "glob?", "é", "brace{}", "paren(", "pipe|", "amp&", "lt<", "gt>", "back`tick", "hash#",
])
def test_a_name_a_request_line_would_need_to_quote_goes_as_cpio(tmp_path: Path, name: str) -> None:
    assert plain_entries(datum(tmp_path, {f"in/{name}": b"x"})) is None
    if not name.startswith("."):  # a top-level dot name is no input at all, in either form
        assert plain_entries(datum(tmp_path / "2", {f"{name}/x": b"x"})) is None


def test_a_file_that_shrank_after_the_walk_is_refused(tmp_path: Path) -> None:
    root = datum(tmp_path, {"in/x": b"12345"})
    entries = plain_entries(root)
    assert entries is not None
    (tmp_path / "in" / "x").write_bytes(b"12")
    with pytest.raises(InvalidPath, match="shrank"):
        b"".join(entry_chunks(root, entries))


def test_a_symlinked_input_is_refused(tmp_path: Path) -> None:
    root = datum(tmp_path, {"in/x": b"1"})
    (tmp_path / "in" / "link").symlink_to(tmp_path / "in" / "x")
    with pytest.raises(InvalidPath, match="not a regular file"):
        plain_entries(root)


MEMORY = (("b", None), ("in", None), ("in/a", None), ("in/a/x=1.txt", b"one\n"), ("in/big", b"z" * 70_000),
          ("in/empty", b""))


def test_inputs_in_memory_go_as_the_same_bytes_as_the_folder_they_would_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the same inputs laid out in a folder and read into memory
    folder = datum(tmp_path, {rel: body for rel, body in MEMORY if body is not None})
    (tmp_path / "b").mkdir()
    memory = MemoryInputs(MEMORY)
    monkeypatch.setattr("time.time", lambda: 1_700_000_000.0)  # the archives' mtime
    # Then a runtime sends both alike, in every form
    assert list(memory.walk()) == list(folder.walk())
    assert plain_entries(memory) is None and plain_entries(folder) is None  # six entries: past the bound
    assert b"".join(cpio_chunks(memory, 60999)) == b"".join(cpio_chunks(folder, 60999))
    tars = []
    for inputs in (memory, folder):
        buffer = io.BytesIO()
        write_inputs_tar(inputs, buffer, uid=60999)
        tars.append(buffer.getvalue())
    assert tars[0] == tars[1]
    few = MemoryInputs(MEMORY[1:4])
    entries = plain_entries(few)
    assert entries is not None
    assert b"".join(entry_chunks(few, entries)) == b"d 0 in\nd 0 in/a\nf 4 in/a/x=1.txt\none\n"
