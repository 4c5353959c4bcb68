"""Packs written in one call, for tests that need packed entries without a put-file."""

from __future__ import annotations

from collections.abc import Iterable

from storage.model import FileEntry
from storage.objects import ObjectStore
from storage.packs import PACK_TARGET, PackWriter


def pack_chunks(objects: ObjectStore, chunks: Iterable[bytes], target: int = PACK_TARGET) -> list[FileEntry]:
    """Store small chunks through one PackWriter; one FileEntry per chunk, in order."""
    writer = PackWriter(objects, target)
    for data in chunks:
        writer.add(data)
    return writer.close()
