"""A finishing job's inline outputs into packs: the bytes datums carried in their results.

A datum whose whole output is tiny stores no object of its own (worker/outputs.py): its result
holds the bytes (DatumResult.inline), and its output entries name chunks stored nowhere yet. At
finish, before the datum index or the output commit names them, they are hashed against their
ids and written into packs, one object per job instead of one per datum. The packs are made in
datum order from the same results, so a finish repeated after a crash writes the same packs
(content-addressed, create-only) and the same entries.
"""

from __future__ import annotations

from collections.abc import Mapping

from scheduler.records import IndexEntry
from storage.model import FileEntry
from storage.objects import ObjectStore
from storage.packs import PackWriter


def pack_inline(
    objects: ObjectStore, entries: Mapping[str, IndexEntry], carried: Mapping[str, Mapping[str, bytes]],
) -> dict[str, IndexEntry]:
    """`entries` (datum hash -> outputs) with the chunks `carried` (datum hash -> chunk id ->
    bytes, from DatumResult.inline_chunks, so hashed and sized) stored in packs, and the entries
    naming them placed there."""
    if not carried:
        return dict(entries)
    writer = PackWriter(objects)
    slot: dict[str, int] = {}
    for chunks in carried.values():
        for digest, data in chunks.items():
            if digest not in slot:
                slot[digest] = writer.add(data)
    placed = writer.close()
    out = dict(entries)
    for hash_, chunks in carried.items():
        entry = entries[hash_]
        files = {path: placed[slot[file.chunks[0]]] if _carried(file, chunks) else file
                 for path, file in entry.outputs.items()}
        out[hash_] = IndexEntry(sort_key=entry.sort_key, outputs=files)
    return out


def _carried(file: FileEntry, chunks: Mapping[str, bytes]) -> bool:
    """The entry names one chunk carried inline (any other is stored already: left as it is)."""
    return not file.packed and len(file.chunks) == 1 and file.chunks[0] in chunks
