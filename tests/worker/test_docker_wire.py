"""The worker's end of a Docker session's streams: Channel's framed reads, and outputs_in_memory
(the outputs archive a runner sends back, read without a file)."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from storage.errors import OutputQuotaExceeded, UnsafeOutput
from tests.worker.test_tarsafe import make_tar
from worker.docker_wire import Channel, ChannelClosed, ChannelTimeout, outputs_in_memory


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


# -- Channel: Docker's framed stream ------------------------------------------------------------

def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, Channel]]:
    ours, theirs = socket.socketpair()
    channel = Channel(ours, "test")
    yield theirs, channel
    channel.close()
    theirs.close()


def test_an_answer_in_many_small_frames_reads_back_exactly(pair: tuple[socket.socket, Channel]) -> None:
    theirs, channel = pair
    body = bytes(range(256)) * 40
    # Given an answer line cut across frames, a complaint on stderr, then data in 512-byte frames
    wire = frame(1, b"H 7 0 ") + frame(2, b"a complaint\n") + frame(1, b"0 0 1\nrest")
    wire += b"".join(frame(1, body[i:i + 512]) for i in range(0, len(body), 512)) + frame(1, b"\nT 0 0\n")
    theirs.sendall(wire)
    # Then every read takes exactly its bytes
    assert channel.fields(time.monotonic() + 5, "H", 5) == [7, 0, 0, 0, 1]
    assert channel.read_exact(4, None) == b"rest"
    out = io.BytesIO()
    channel.copy_to(len(body), out, None)
    assert out.getvalue() == body
    assert channel.read_line(None) == ""
    assert channel.fields(None, "T", 2) == [0, 0]
    assert channel.errors() == "a complaint"


def test_a_frame_split_across_reads_waits_for_its_rest(pair: tuple[socket.socket, Channel]) -> None:
    theirs, channel = pair
    wire = frame(1, b"x" * 100_000 + b"\n")
    theirs.sendall(wire[:5])

    def later() -> None:
        time.sleep(0.2)
        theirs.sendall(wire[5:])

    threading.Thread(target=later).start()
    assert channel.read_line(time.monotonic() + 5, limit=200_000) == "x" * 100_000


def test_a_silent_or_closed_stream_is_named(pair: tuple[socket.socket, Channel]) -> None:
    theirs, channel = pair
    theirs.sendall(frame(1, b"H 1")[:6])
    with pytest.raises(ChannelTimeout):
        channel.read_line(time.monotonic() + 0.2)
    theirs.close()
    with pytest.raises(ChannelClosed, match="end of stream"):
        channel.read_line(None)


def test_an_answer_line_past_its_bound_ends_the_session(pair: tuple[socket.socket, Channel]) -> None:
    theirs, channel = pair
    theirs.sendall(frame(1, b"H" * 5000))  # user code writing into the runner's stdout
    with pytest.raises(ChannelClosed, match="too long"):
        channel.read_line(time.monotonic() + 5)
