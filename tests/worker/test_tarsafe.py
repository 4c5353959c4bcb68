"""Extracting a tar into a folder; tar-slip and link tricks are refused, naming the member."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from storage.errors import OutputQuotaExceeded, UnsafeOutput
from worker.tarsafe import extract_tar, member_name, read_tar_files


def make_tar(*members: tuple[str, str, bytes | str]) -> bytes:
    """A tar from (name, kind, data-or-linkname); kinds: file, dir, sym, hard, chr, fifo."""
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
             "hard": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.type = types[kind]
            info.mode = 0o755 if kind == "dir" else 0o644
            if kind == "file":
                assert isinstance(payload, bytes)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                info.linkname = payload if isinstance(payload, str) else ""
                tar.addfile(info)
    return buffer.getvalue()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "box" / "dest"


def test_nested_tree_with_hard_link(dest: Path) -> None:
    # Given an archive with nested files, an empty file, an empty dir and a hard link
    archive = make_tar(
        ("a", "dir", b""), ("a/b", "dir", b""), ("a/b/c", "file", b"deep"), ("empty", "file", b""),
        ("nothing", "dir", b""), ("x", "file", b"linked"), ("y", "hard", "x"),
    )
    # When extracted
    written = extract_tar(io.BytesIO(archive), dest)
    # Then the tree is the same
    assert (dest / "a" / "b" / "c").read_bytes() == b"deep"
    assert (dest / "empty").read_bytes() == b"" and (dest / "nothing").is_dir()
    assert (dest / "y").read_bytes() == b"linked"
    assert written == 10


def test_strip_prefix(dest: Path) -> None:
    # get_archive("/pfs/out") names members out/...
    extract_tar(io.BytesIO(make_tar(("out", "dir", b""), ("out/f", "file", b"F"))), dest, strip_prefix="out")
    assert (dest / "f").read_bytes() == b"F"


def test_chunk_iterable_source(dest: Path) -> None:
    data = make_tar(("d", "dir", b""), ("d/f", "file", b"chunked" * 1000))
    chunks = (data[i : i + 777] for i in range(0, len(data), 777))
    extract_tar(chunks, dest)
    assert (dest / "d" / "f").read_bytes() == b"chunked" * 1000


UNSAFE = [
        ([("../x", "file", b"slip")], "../x"),
        (([("a/../../x", "file", b"slip")]), "a/../../x"),
        ([("/abs", "file", b"abs")], "/abs"),
        ([("link", "sym", "/etc")], "link"),
        ([("link", "sym", "../..")], "link"),
        ([("inside", "sym", "f")], "inside"),
        ([("h", "hard", "/etc/passwd")], "/etc/passwd"),
        ([("h", "hard", "../outside")], "../outside"),
        ([("h", "hard", "not-yet")], "h"),
        ([("null", "chr", b"")], "null"),
        ([("pipe", "fifo", b"")], "pipe"),
        ([("f", "file", b"1"), ("f", "file", b"2")], "f"),
        ([("f", "file", b"1"), ("f/g", "file", b"2")], "f/g"),
        ([("f", "file", b"1"), ("h", "hard", "f"), ("h2", "hard", "h")], "h2"),
        ([("esc", "sym", "/tmp"), ("esc/pwned", "file", b"x")], "esc"),
]


@pytest.mark.parametrize(("members", "named"), UNSAFE)
def test_unsafe_members_are_refused(dest: Path, members: list, named: str) -> None:
    with pytest.raises(UnsafeOutput) as caught:
        extract_tar(io.BytesIO(make_tar(*members)), dest)
    assert named in str(caught.value)
    assert not (dest.parent / "x").exists() and not (dest.parent / "outside").exists()
    assert not any(p.is_symlink() for p in dest.rglob("*"))


def test_symlink_then_write_through_it_never_escapes(dest: Path) -> None:
    # The classic: a link to a host folder, then a file "through" the link.
    archive = make_tar(("esc", "sym", str(dest.parent)), ("esc/pwned", "file", b"x"))
    with pytest.raises(UnsafeOutput, match="esc"):
        extract_tar(io.BytesIO(archive), dest)
    assert not (dest.parent / "pwned").exists()


def test_preexisting_symlink_in_dest_is_not_followed(dest: Path) -> None:
    dest.mkdir(parents=True)
    os.symlink(dest.parent, dest / "up")
    with pytest.raises(UnsafeOutput, match="outside the destination"):
        extract_tar(io.BytesIO(make_tar(("up/pwned", "file", b"x"))), dest)
    assert not (dest.parent / "pwned").exists()


def test_strip_prefix_refuses_other_members(dest: Path) -> None:
    with pytest.raises(UnsafeOutput, match="outside 'out/'"):
        extract_tar(io.BytesIO(make_tar(("out/a", "file", b"a"), ("etc/b", "file", b"b"))), dest, strip_prefix="out")


def test_quota(dest: Path) -> None:
    with pytest.raises(OutputQuotaExceeded, match="quota of 5 bytes .*at '/b'"):
        extract_tar(io.BytesIO(make_tar(("a", "file", b"1234"), ("b", "file", b"56"))), dest, quota_bytes=5)
    # the member past the quota is refused on its header: not one byte of it is written
    assert (dest / "a").read_bytes() == b"1234" and not (dest / "b").exists()


def test_quota_counts_every_member_and_allows_exactly_the_quota(dest: Path) -> None:
    archive = make_tar(("d", "dir", b""), ("d/a", "file", b"12"), ("d/h", "hard", "d/a"), ("b", "file", b"345"))
    assert extract_tar(io.BytesIO(archive), dest, quota_bytes=5) == 5


def test_garbage_is_not_a_tar(dest: Path) -> None:
    with pytest.raises(UnsafeOutput, match="not a valid tar"):
        extract_tar(io.BytesIO(b"\x01" * 2048), dest)


def test_member_name_normalises() -> None:
    assert member_name("./a//b/") == "a/b"
    assert member_name("out/", "out") is None
    assert member_name("out/x/y", "out") == "x/y"


@pytest.mark.parametrize(("members", "named"), UNSAFE)
def test_an_archive_read_in_memory_refuses_what_extraction_refuses(members: list, named: str) -> None:
    with pytest.raises(UnsafeOutput) as caught:
        read_tar_files(make_tar(*members))
    assert named in str(caught.value)


def test_an_archive_read_in_memory_gives_its_files_and_drops_folders() -> None:
    archive = make_tar(("pfs", "dir", b""), ("pfs/out", "dir", b""), ("pfs/out/d", "dir", b""), ("pfs/out/e", "dir", b""),
                       ("pfs/out/d/f", "file", b"data"), ("pfs/out/h", "hard", "pfs/out/d/f"),
                       ("pfs/out/empty", "file", b""))
    assert read_tar_files(archive, strip_prefix="pfs") == {"out/d/f": b"data", "out/h": b"data", "out/empty": b""}


def test_an_archive_read_in_memory_keeps_to_its_quota_and_its_prefix() -> None:
    archive = make_tar(("d", "dir", b""), ("d/a", "file", b"12"), ("d/h", "hard", "d/a"), ("b", "file", b"345"))
    assert read_tar_files(archive, quota_bytes=5) == {"d/a": b"12", "d/h": b"12", "b": b"345"}
    with pytest.raises(OutputQuotaExceeded, match="quota of 4 bytes .*at '/b'"):
        read_tar_files(archive, quota_bytes=4)
    with pytest.raises(UnsafeOutput, match="outside 'out/'"):
        read_tar_files(make_tar(("out/a", "file", b"a"), ("etc/b", "file", b"b")), strip_prefix="out")


@pytest.mark.parametrize("kept", [100, 512, 513, 2000, 3511])
def test_an_archive_cut_short_is_refused_in_memory(kept: int) -> None:
    archive = make_tar(("a", "file", b"x" * 3000))  # a header, then 3,000 bytes of data
    with pytest.raises(UnsafeOutput, match="not a valid tar|cut short"):
        read_tar_files(archive[:kept])


def test_garbage_is_not_a_tar_in_memory() -> None:
    with pytest.raises(UnsafeOutput, match="not a valid tar"):
        read_tar_files(b"\x01" * 2048)
