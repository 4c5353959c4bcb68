"""outputs_in_memory: the outputs archive a Docker runner sends back, read without a file."""

from __future__ import annotations

import io

import pytest

from storage.errors import OutputQuotaExceeded, UnsafeOutput
from tests.worker.test_tarsafe import make_tar
from worker.docker_wire import outputs_in_memory


def spool(archive: bytes) -> io.BytesIO:
    stream = io.BytesIO(archive)
    stream.seek(0, 2)  # as read_answer leaves it: written to the end
    return stream


def test_the_files_below_pfs_out_are_given_by_their_path_below_it() -> None:
    archive = make_tar(("pfs/out", "dir", b""), ("pfs/out/a", "file", b"A"), ("pfs/out/d", "dir", b""),
                       ("pfs/out/d/b", "file", b"B"))
    assert outputs_in_memory(spool(archive), None, 1 << 20) == {"a": b"A", "d/b": b"B"}


def test_no_archive_is_no_output_and_a_large_one_is_left_to_unpack() -> None:
    assert outputs_in_memory(spool(b""), None, 1 << 20) == {}
    archive = make_tar(("pfs/out/a", "file", b"A" * 5000))
    stream = spool(archive)
    assert outputs_in_memory(stream, None, len(archive) - 1) is None
    assert stream.tell() == 0  # rewound for unpack_outputs


@pytest.mark.parametrize(
    ("members", "named"),
    [
        ([("pfs/out/a", "file", b"A"), ("pfs/evil", "file", b"x")], "/pfs/evil"),
        ([("pfs/in/a.txt", "file", b"x")], "/pfs/in/a.txt"),
        ([("pfs/out", "file", b"x")], "/pfs/out"),
        ([("etc/passwd", "file", b"x")], "etc/passwd"),
        ([("pfs/out/link", "sym", "/etc/passwd")], "/pfs/out/link"),
        ([("pfs/out/../../x", "file", b"x")], "/pfs/out/../../x"),
    ],
)
def test_anything_but_files_below_pfs_out_is_refused_by_name(members: list, named: str) -> None:
    with pytest.raises(UnsafeOutput) as caught:
        outputs_in_memory(spool(make_tar(*members)), None, 1 << 20)
    assert caught.value.path == named


def test_the_quota_holds_in_memory_too() -> None:
    archive = make_tar(("pfs/out/a", "file", b"1234"), ("pfs/out/b", "file", b"56"))
    with pytest.raises(OutputQuotaExceeded):
        outputs_in_memory(spool(archive), 5, 1 << 20)
    assert outputs_in_memory(spool(archive), 6, 1 << 20) == {"a": b"1234", "b": b"56"}
