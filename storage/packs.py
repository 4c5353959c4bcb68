"""Packs: many small chunks back to back in one content-addressed object (storage format 2).

One object per small file caps a `put-file -r` of 100,000 files at what the store does per
object (a file made and renamed locally, a request on S3). A pack holds the bodies of up to
PACK_TARGET bytes of chunks, each at most PACKED_CHUNK_MAX (1 MiB), stored create-only at
`packs/<sha256 of the pack>`. Its index is the manifest: a FileEntry says where each chunk lies
(`packed`: pack id, offset, length), as Pachyderm 2's file index points into its chunks. A
chunk keeps its own id (its SHA-256), so file hashes, datum ids and diffs never see packs, and
every read of a packed chunk is hashed against that id before a byte is handed out
(`BlobStore.read_slice`).

Written bottom-up like blobs: a pack is stored before any record names it, so a crash leaves
at worst an unreferenced pack, which garbage-collect frees after its grace period. The first
pack written into a format-1 store raises its format marker to 2 first, so an older herd
refuses the store instead of misreading its manifests.

Chunks are deduplicated within a pack, not across packs: the price of one object per batch.
"""

from __future__ import annotations

import hashlib

from storage.blobs import PACKED_CHUNK_MAX, BlobStore
from storage.factory import ensure_format
from storage.layout import PACKS_FORMAT, pack_key
from storage.model import FileEntry, PackSlice
from storage.objects import ObjectStore

# A pack is closed once it holds this much. (Chunks up to PACKED_CHUNK_MAX go into packs, a
# bigger one stays a loose blob: read_slice refuses a longer slice, so a crafted manifest cannot
# make a reader hold gigabytes.)
PACK_TARGET = 64 * 1024 * 1024
# Fewer small files than this in one write stay loose blobs: a pack of a few saves little and
# gives up deduplication across writes.
PACK_MIN_CHUNKS = 16

class PackWriter:
    """Collects small chunks into packs; `close()` gives one FileEntry per chunk added."""

    def __init__(self, objects: ObjectStore, target: int = PACK_TARGET) -> None:
        self.objects = objects
        self.blobs = BlobStore(objects)
        self.target = target
        self._buffer = bytearray()
        self._offsets: dict[str, int] = {}  # digest -> offset in the open pack
        self._open: list[tuple[int, str, int, int]] = []  # (entry index, digest, offset, length)
        self._entries: list[FileEntry | None] = []
        self.packs: list[str] = []

    def add(self, data: bytes) -> int:
        """Queue one chunk; its entry's index in `close()`'s list. A chunk above
        PACKED_CHUNK_MAX is stored as a loose blob instead."""
        index = len(self._entries)
        if len(data) > PACKED_CHUNK_MAX:
            digest, size = self.blobs.put_bytes(data)
            self._entries.append(FileEntry(chunks=(digest,), size=size))
            return index
        digest = hashlib.sha256(data).hexdigest()
        offset = self._offsets.get(digest)
        if offset is None:
            offset = self._offsets[digest] = len(self._buffer)
            self._buffer += data
        self._open.append((index, digest, offset, len(data)))
        self._entries.append(None)
        if len(self._buffer) >= self.target:
            self.flush()
        return index

    def flush(self) -> None:
        """Store the open pack (create-only) and fill in the entries of its chunks."""
        if not self._open:
            return
        data = bytes(self._buffer)
        pack = hashlib.sha256(data).hexdigest()
        ensure_format(self.objects, PACKS_FORMAT)
        self.objects.put_if_absent(pack_key(pack), data)
        for index, digest, offset, length in self._open:
            where: PackSlice = (pack, offset, length)
            self._entries[index] = FileEntry(chunks=(digest,), size=length, packed=(where,))
        self.packs.append(pack)
        self._buffer, self._offsets, self._open = bytearray(), {}, []

    def close(self) -> list[FileEntry]:
        """Store what is left; the entries, in the order their chunks were added."""
        self.flush()
        entries = [entry for entry in self._entries if entry is not None]
        assert len(entries) == len(self._entries), "every chunk was stored"
        return entries

