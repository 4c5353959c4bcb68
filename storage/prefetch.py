"""Read the small packed chunks a batch of datums will stage in a few ranged reads.

A trivial datum's input is one small file in a pack; read alone, each is one request (on S3 a
GET of a few bytes, about a fifth of such a datum's requests). A worker given a batch reads the
slices its datums name first: per pack, neighbouring slices are merged into one range (gaps of
up to GAP bytes are read and dropped), every chunk is hashed against its id as it is taken out,
and staging then writes from memory.

Best effort: a chunk that fails its hash, or a range that cannot be read, is left out, and the
datum that needs it reads it alone and meets the error there; one bad chunk fails its own
datum, never the batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from storage.blobs import PACKED_CHUNK_MAX, BlobStore, slice_problem
from storage.errors import ObjectNotFound, StorageUnavailable
from storage.layout import pack_key
from storage.model import FileEntry, PackSlice

GAP = 64 * 1024  # bytes between two slices read and dropped rather than a second request
SPAN = 8 * 1024 * 1024  # the longest range one request reads
BUDGET = 16 * 1024 * 1024  # the most chunk bytes held for one batch

Slice = tuple[str, PackSlice]  # a chunk's id, and where it lies


@dataclass(frozen=True)
class Range:
    """One ranged read of a pack, and the slices it holds."""

    pack: str
    offset: int
    length: int
    slices: tuple[Slice, ...]


def packed_slices(entries: Iterable[FileEntry]) -> list[Slice]:
    """The packed chunks of `entries`, in order (loose blobs are read whole, not here)."""
    found: list[Slice] = []
    for entry in entries:
        if len(entry.packed) == len(entry.chunks):  # else a damaged entry: its own read says so
            found.extend((digest, where) for digest, where in zip(entry.chunks, entry.packed) if where is not None)
    return found


def plan_ranges(slices: Iterable[Slice], gap: int = GAP, span: int = SPAN, budget: int = BUDGET) -> list[Range]:
    """The reads that fetch `slices` (each once), in order, up to `budget` bytes of them.

    Slices of one pack at most `gap` apart share a read of at most `span` bytes. A slice longer
    than a pack holds per chunk is left to its own read, which refuses it."""
    chosen: dict[Slice, None] = {}
    total = 0
    for item in slices:
        length = item[1][2]
        if item in chosen or length > PACKED_CHUNK_MAX:
            continue
        if total + length > budget:
            break
        chosen[item] = None
        total += length
    by_pack: defaultdict[str, list[Slice]] = defaultdict(list)
    for item in chosen:
        by_pack[item[1][0]].append(item)
    ranges: list[Range] = []
    for pack, members in sorted(by_pack.items()):
        members.sort(key=lambda item: (item[1][1], item[1][2]))
        group: list[Slice] = []
        start = end = 0
        for item in members:
            _, offset, length = item[1]
            if group and offset - end <= gap and max(end, offset + length) - start <= span:
                group.append(item)
                end = max(end, offset + length)
                continue
            if group:
                ranges.append(Range(pack, start, end - start, tuple(group)))
            group, start, end = [item], offset, offset + length
        if group:
            ranges.append(Range(pack, start, end - start, tuple(group)))
    return ranges


class PrefetchedChunks:
    """A batch's packed chunks, read ahead and verified; every other chunk through `blobs`."""

    def __init__(self, blobs: BlobStore, slices: Iterable[Slice]) -> None:
        self.blobs = blobs
        self._ready: dict[Slice, bytes] = {}
        self.requests = 0
        for read in plan_ranges(slices):
            try:
                data = blobs.objects.get_range(pack_key(read.pack), read.offset, read.length)
            except (ObjectNotFound, StorageUnavailable):
                continue  # each datum's own read meets it, and its attempt records it
            finally:
                self.requests += 1
            for digest, where in read.slices:
                start = where[1] - read.offset
                piece = data[start:start + where[2]]
                if slice_problem(digest, where, piece) is None:
                    self._ready[(digest, where)] = piece

    def __len__(self) -> int:
        return len(self._ready)

    def write_chunk_to(self, digest: str, where: PackSlice | None, out: BinaryIO) -> int:
        """Copy one chunk into `out` (see BlobStore.write_chunk_to); returns its size."""
        data = None if where is None else self._ready.get((digest, where))
        if data is None:
            return self.blobs.write_chunk_to(digest, where, out)
        out.write(data)
        return len(data)
