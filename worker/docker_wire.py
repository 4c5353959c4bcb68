"""The worker's end of the runner/stager streams: Docker's stream framing and the answers.

A hijacked attach or exec connection carries raw bytes to the process's stdin and, back, its
stdout and stderr cut into frames of `[stream, 0, 0, 0, size (4 bytes, big endian)] + data`.
Nothing here trusts the bytes: user code runs with the runner's uid and could write into its
stdout, so every length is bounded, every line checked, and a bad answer ends the session.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from storage.errors import OutputQuotaExceeded, UnsafeOutput
from worker.runtime import LOG_TAIL_BYTES
from worker.tarsafe import extract_tar, read_tar_files

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
EXTENSION_TYPES = (b"L", b"K", b"x", b"g")  # GNU long names, pax headers: belong to the next member
MAX_EXTENSION = 1024 * 1024
SEND_BUFFER = 256 * 1024
LOG_MEMBERS = {b".herd/w/o": "stdout", b".herd/w/e": "stderr"}
SCRATCH = ".herd-docker-out"  # in the datum folder: same filesystem as out/, never an input name


class ChannelClosed(Exception):
    """The other end is gone, or sent something that is not the protocol."""


class ChannelTimeout(Exception):
    """No answer before the deadline."""


class Channel:
    """One hijacked Docker stream: raw bytes to stdin, framed stdout/stderr back."""

    def __init__(self, sock: socket.socket, label: str) -> None:
        self.label = label
        self._sock = sock
        self._out = bytearray()
        self._err = bytearray()  # the loop's own complaints, for error messages

    def send(self, header: str, payload: bytes | Iterable[bytes] = b"") -> None:
        """Write a request line and its payload (bytes or chunks)."""
        buffer = bytearray(header.encode())
        try:
            self._sock.settimeout(None)
            for chunk in [payload] if isinstance(payload, bytes) else payload:
                buffer += chunk
                if len(buffer) >= SEND_BUFFER:  # few large writes: each one wakes the engine
                    self._sock.sendall(buffer)
                    buffer.clear()
            self._sock.sendall(buffer)
        except OSError as exc:
            raise ChannelClosed(f"{self.label}: {exc}") from None

    def fields(self, deadline: float | None, tag: str, count: int) -> list[int]:
        """The integers of the next answer line, which must be `tag` and `count` numbers."""
        line = self.read_line(deadline)
        parts = line.split()
        if len(parts) != count + 1 or parts[0] != tag or not all(p.isdigit() for p in parts[1:]):
            raise ChannelClosed(f"{self.label}: unexpected answer {line[:200]!r}")
        return [int(p) for p in parts[1:]]

    def read_line(self, deadline: float | None, limit: int = 4096) -> str:
        while (end := self._out.find(b"\n")) < 0:
            if len(self._out) > limit:
                raise ChannelClosed(f"{self.label}: answer line too long")
            self._fill(deadline)
        line = bytes(self._out[:end])
        del self._out[: end + 1]
        return line.decode(errors="replace")

    def read_exact(self, size: int, deadline: float | None) -> bytes:
        while len(self._out) < size:
            self._fill(deadline)
        data = bytes(self._out[:size])
        del self._out[:size]
        return data

    def copy_to(self, size: int, out: IO[bytes] | None, deadline: float | None, tail: bytearray | None = None) -> None:
        """Move `size` bytes to `out` (or keep their last LOG_TAIL_BYTES in `tail`)."""
        while size > 0:
            if not self._out:
                self._fill(deadline)
            take = min(size, len(self._out))
            if out is not None:
                out.write(self._out[:take])
            if tail is not None:
                tail += self._out[:take]
                del tail[:-LOG_TAIL_BYTES]
            del self._out[:take]
            size -= take

    def errors(self) -> str:
        """The last 2 KiB the process printed on its stderr."""
        return self._err[-2048:].decode(errors="replace").strip()

    def close(self) -> None:
        """Shut the connection down (other references to the socket must not keep it open)."""
        def shutdown() -> None:
            self._sock.shutdown(socket.SHUT_RDWR)

        for end in (shutdown, self._sock.close):
            try:
                end()
            except OSError:
                pass

    def _fill(self, deadline: float | None) -> None:
        """Read one frame: stdout is kept for parsing, stderr for diagnostics."""
        header = self._recv(8, deadline)
        data = self._recv(int.from_bytes(header[4:8], "big"), deadline)
        if header[0] == 2:
            self._err += data
            del self._err[:-8192]
        else:
            self._out += data

    def _recv(self, size: int, deadline: float | None) -> bytes:
        parts, missing = [], size
        while missing:
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                raise ChannelTimeout(self.label)
            try:
                self._sock.settimeout(timeout)
                chunk = self._sock.recv(min(missing, 1024 * 1024))
            except TimeoutError:
                raise ChannelTimeout(self.label) from None
            except OSError as exc:
                raise ChannelClosed(f"{self.label}: {exc}") from None
            if not chunk:
                raise ChannelClosed(f"{self.label}: end of stream")
            parts.append(chunk)
            missing -= len(chunk)
        return b"".join(parts)


@dataclass
class Answer:
    """A runner's answer to one datum."""

    seq: int
    exit_code: int
    timed_out: bool
    oom_killed: bool = False
    stdout: bytes = b""
    stderr: bytes = b""
    tar_status: int = 0
    tar_error: str = ""


def read_answer(channel: Channel, deadline: float | None, outputs: IO[bytes], quota: int | None = None) -> Answer:
    """`H ...`, then (if announced) the tar, split: logs kept as tails, the rest to `outputs`.

    Raises:
        OutputQuotaExceeded: the outputs' files add up to more than `quota` bytes; the stream
            is left mid-tar (the caller ends the session).
    """
    seq, code, timed_out, oom_killed, has_tar = channel.fields(deadline, "H", 5)
    answer = Answer(seq, code, bool(timed_out), bool(oom_killed))
    if has_tar:
        tails = split_tar(channel, deadline, outputs, quota)
        answer.stdout, answer.stderr = bytes(tails["stdout"]), bytes(tails["stderr"])
        answer.tar_status, size = channel.fields(deadline, "T", 2)
        answer.tar_error = channel.read_exact(min(size, 65536), deadline).decode(errors="replace")
        channel.copy_to(size - min(size, 65536), None, deadline)
    return answer


def split_tar(
    channel: Channel, deadline: float | None, outputs: IO[bytes], quota: int | None = None
) -> dict[str, bytearray]:
    """Walk a tar block by block off the stream (it ends at two zero blocks); the log members'
    data become tails, every other member is copied verbatim to `outputs` for tarsafe.

    The quota is counted on member headers, before their data: a /pfs/out that filled the
    engine's disk is refused at its first file past the quota, and never lands on the worker's."""
    tails = {name: bytearray() for name in LOG_MEMBERS.values()}
    pending: list[bytes] = []
    total = 0
    while True:
        block = channel.read_exact(BLOCK, deadline)
        if block == ZERO_BLOCK:
            channel.read_exact(BLOCK, deadline)
            outputs.write(ZERO_BLOCK * 2)
            return tails
        size = _member_size(block)
        padded = size + (-size % BLOCK)
        if block[156:157] in EXTENSION_TYPES:
            if size > MAX_EXTENSION:
                raise ChannelClosed(f"{channel.label}: tar extension header of {size} bytes")
            pending.append(block + channel.read_exact(padded, deadline))
            continue
        log_name = LOG_MEMBERS.get(block[:100].rstrip(b"\0"))
        if log_name is not None and not pending and block[156:157] in (b"0", b"\0"):
            channel.copy_to(size, None, deadline, tails[log_name])
            channel.copy_to(padded - size, None, deadline)
            continue
        total += size  # whatever its type: every byte announced is a byte to receive
        if quota is not None and total > quota:
            name = block[:100].rstrip(b"\0").decode(errors="replace")
            raise OutputQuotaExceeded(quota, f"at '/{name}'")
        outputs.write(b"".join(pending) + block)
        pending.clear()
        channel.copy_to(padded, outputs, deadline)


def _member_size(block: bytes) -> int:
    """The size field of a tar header: octal text, or base-256 when its top bit is set."""
    field = block[124:136]
    if field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip() or b"0"
    try:
        return int(text, 8)
    except ValueError:
        raise ChannelClosed(f"not a tar header (size field {field!r})") from None


def outputs_in_memory(outputs: IO[bytes], quota: int | None, limit: int) -> dict[str, bytes] | None:
    """The files of the outputs tar (`pfs/out/...` names) by their path below /pfs/out ('a/b'),
    checked as unpack_outputs checks them but never written to disk; None when the tar is
    larger than `limit` bytes (unpack_outputs lays those out instead, for collection to adopt)."""
    size = outputs.seek(0, 2)
    outputs.seek(0)
    if size > limit:
        return None
    if size == 0:
        return {}  # no archive came (the answer announced none)
    try:
        found = read_tar_files(outputs.read(), strip_prefix="pfs", quota_bytes=quota)
    except UnsafeOutput as exc:
        raise _as_user_sees_it(exc) from None
    files = {}
    for name, body in found.items():
        if not name.startswith("out/"):
            why = "is not a directory" if name == "out" else "the runner's archive reaches outside /pfs/out"
            raise UnsafeOutput(f"/pfs/{name}", why)
        files[name[4:]] = body
    return files


def unpack_outputs(outputs: IO[bytes], pfs_dir: Path, quota: int | None) -> None:
    """Extract the outputs tar (`pfs/out/...` names) with tarsafe, then move them into `out/`.

    Extraction goes to a scratch folder (`<pfs_dir>/.herd-docker-out`, kept between datums):
    a forged member outside pfs/out lands there and is refused, never written over an input."""
    if not outputs.read(1):
        return
    outputs.seek(0)
    scratch = _empty_scratch(Path(pfs_dir) / SCRATCH)
    try:
        extract_tar(outputs, scratch, strip_prefix="pfs", quota_bytes=quota)
        _move_out(scratch, Path(pfs_dir) / "out")
    except UnsafeOutput as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise _as_user_sees_it(exc) from None
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _as_user_sees_it(exc: UnsafeOutput) -> UnsafeOutput:
    """An archive member's refusal named by its path in the container (`/pfs/out/...`)."""
    path = f"/{exc.path}" if exc.path.startswith("pfs/") else exc.path
    return UnsafeOutput(path, exc.message.split(" in /pfs/out: ", 1)[-1])


def _empty_scratch(scratch: Path) -> Path:
    """The scratch folder, empty, or empty but for an empty `out/` (as the previous datum left
    it, or as the worker's emptying of a reused datum folder leaves it)."""
    try:
        names = os.listdir(scratch)
        if not names or (names == ["out"] and not os.listdir(scratch / "out")):
            return scratch
    except FileNotFoundError:
        pass
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    return scratch


def _move_out(scratch: Path, out_dir: Path) -> None:
    """Move what was extracted under scratch/out into out_dir; anything else is refused."""
    strays = [name for name in os.listdir(scratch) if name != "out"]
    if strays:
        raise UnsafeOutput(f"/pfs/{strays[0]}", "the runner's archive reaches outside /pfs/out")
    if not (scratch / "out").is_dir():
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(scratch / "out"):
        os.replace(scratch / "out" / name, out_dir / name)
