"""A temporary folder on tmpfs (/dev/shm) where there is one, for the rows that write many files.

The disk of the project's machine (ext4 mounted with `discard`, no journal, on a VM) adds noise
far larger than the work these rows time, and it lands on whichever side runs after a delete:
the same `cp` of 256 MiB to a new file took 0.07 s or 0.73 s from one run to the next, and the
bare script of row 11 (6,000 files of 3 KB) 0.13 s or 1.2 s. On tmpfs herd and its anchor do
the same work (hashing, copying, files made, linked and renamed) without the disk's moods.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SHM = Path("/dev/shm")


@contextmanager
def fast_folder(prefix: str) -> Iterator[Path]:
    """A temporary folder on /dev/shm when it is writable, else in the default place; removed after."""
    place = str(SHM) if SHM.is_dir() and os.access(SHM, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix=prefix, dir=place) as folder:
        yield Path(folder)
