"""worker/docker_runner.py's pure parts: which inputs go as `E` entries, and their bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.errors import InvalidPath
from worker.docker_runner import SHELL_STAGE_ENTRIES, entry_chunks, plain_entries


def datum(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "out").mkdir(exist_ok=True)
    return root


def test_a_few_plain_entries_go_as_lines_and_exact_bytes(tmp_path: Path) -> None:
    root = datum(tmp_path, {"in/a/x=1.txt": b"one\n", "in/empty": b""})
    (root / "out" / "ignored").write_bytes(b"outputs are never staged")
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
    (root / "in" / "x").write_bytes(b"12")
    with pytest.raises(InvalidPath, match="shrank"):
        b"".join(entry_chunks(root, entries))


def test_a_symlinked_input_is_refused(tmp_path: Path) -> None:
    root = datum(tmp_path, {"in/x": b"1"})
    (root / "in" / "link").symlink_to(root / "in" / "x")
    with pytest.raises(InvalidPath, match="not a regular file"):
        plain_entries(root)
