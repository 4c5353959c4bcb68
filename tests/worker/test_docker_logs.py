"""worker/docker_logs.py: one poller thread a session, reads of the running datum only.

The read function here is a fake of the session's exec (pure threading logic); the real one
is exercised against an engine by test_log_shipper.py's Docker test and tests/distributed.
"""

from __future__ import annotations

import threading
import time

from tests.fixtures.services import wait_until
from worker.docker_logs import LivePoller


class Sink:
    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []

    def write(self, stream: str, chunk: bytes) -> None:
        self.chunks.append((stream, chunk))


class Output:
    """What a datum's output files hold; `read` answers from the offsets asked."""

    def __init__(self) -> None:
        self.stdout, self.stderr = b"", b""
        self.asked: list[tuple[int, int]] = []
        self.gate: threading.Event | None = None  # when set, a read waits for it
        self.reading = threading.Event()

    def read(self, stdout_from: int, stderr_from: int) -> tuple[bytes | None, bytes | None]:
        self.asked.append((stdout_from, stderr_from))
        self.reading.set()
        if self.gate is not None:
            self.gate.wait(10)
        return self.stdout[stdout_from - 1:], self.stderr[stderr_from - 1:]


def poller_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "herd-test-logs"]


def test_a_datum_shorter_than_the_interval_costs_no_read() -> None:
    output = Output()
    poller = LivePoller(output.read, interval=5.0, name="herd-test-logs")
    sink = Sink()
    for _ in range(50):
        with poller.watching(sink):
            pass
    assert output.asked == [] and sink.chunks == []
    assert len(poller_threads()) == 1  # one thread served the fifty datums
    poller.close()
    assert wait_until(lambda: not poller_threads(), timeout=5)


def test_a_long_datum_is_read_from_where_the_last_read_ended() -> None:
    output = Output()
    poller = LivePoller(output.read, interval=0.02, name="herd-test-logs")
    sink = Sink()
    with poller.watching(sink):
        output.stdout = b"one\n"
        assert wait_until(lambda: sink.chunks == [("stdout", b"one\n")], timeout=5)
        output.stdout, output.stderr = b"one\ntwo\n", b"oops\n"
        assert wait_until(lambda: len(sink.chunks) == 3, timeout=5)
    assert sink.chunks == [("stdout", b"one\n"), ("stdout", b"two\n"), ("stderr", b"oops\n")]
    assert (5, 1) in output.asked  # past "one\n" on stdout, from the start of stderr
    # And the next datum starts from its own beginning
    output.asked.clear()
    output.stdout, output.stderr = b"next\n", b""
    second = Sink()
    with poller.watching(second):
        assert wait_until(lambda: second.chunks == [("stdout", b"next\n")], timeout=5)
    assert output.asked[0] == (1, 1)
    poller.close()


def test_a_read_under_way_when_the_datum_ends_reaches_no_sink() -> None:
    # Given a read that is still waiting on the engine when its datum ends
    output = Output()
    output.stdout = b"late\n"
    output.gate = threading.Event()
    poller = LivePoller(output.read, interval=0.01, name="herd-test-logs")
    sink = Sink()
    with poller.watching(sink):
        assert output.reading.wait(5)
    # When the read answers after the datum's end, and the next datum has begun
    following = Sink()
    with poller.watching(following):
        output.gate.set()
        time.sleep(0.05)
        output.gate = None
    # Then the ended datum's sink got nothing, ever
    assert sink.chunks == []
    poller.close()


def test_a_closed_poller_starts_again_for_the_next_datum() -> None:
    output = Output()
    poller = LivePoller(output.read, interval=0.01, name="herd-test-logs")
    poller.close()  # before any datum: nothing to stop
    with poller.watching(Sink()):
        pass
    poller.close()
    assert wait_until(lambda: not poller_threads(), timeout=5)
    output.stdout = b"again\n"
    sink = Sink()
    with poller.watching(sink):
        assert wait_until(lambda: sink.chunks == [("stdout", b"again\n")], timeout=5)
    poller.close()
    assert wait_until(lambda: not poller_threads(), timeout=5)


def test_a_failed_read_is_tried_again() -> None:
    answers = iter([None, None, (b"at last\n", b"")])
    poller = LivePoller(lambda a, b: next(answers, (b"", b"")), interval=0.01, name="herd-test-logs")
    sink = Sink()
    with poller.watching(sink):
        assert wait_until(lambda: sink.chunks == [("stdout", b"at last\n")], timeout=5)
    poller.close()
