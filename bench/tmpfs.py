"""A temporary folder on tmpfs (/dev/shm) where there is one, for the rows that write many files.

The disk of the project's machine (ext4 mounted with `discard`, no journal, on a VM) adds noise
far larger than the work these rows time, and it lands on whichever side runs after a delete:
the same `cp` of 256 MiB to a new file took 0.07 s or 0.73 s from one run to the next, and the
bare script of row 11 (6,000 files of 3 KB) 0.13 s or 1.2 s. On tmpfs herd and its anchor do
the same work (hashing, copying, files made, linked and renamed) without the disk's moods.

The moods have a cause (perf record -a -g, 2026-12-04): without a journal, ext4 gives a new file
no inode freed in the last 60 s (360 s while its inode table is unwritten; `recently_deleted` in
`find_inode_bit`), and it walks past every such inode to find one, so after a burst of deletes a
create costs 0.2-0.8 ms instead of ~20 us. `create_cost` measures what one costs in a folder now.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
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


def create_cost(folder: Path, count: int = 300) -> float:
    """Median seconds to create one empty file (create-only) in a new folder under `folder`: what a
    new inode costs there now. The files stay until `folder` is removed, since deleting them would
    slow the creates that follow on a file system without a journal."""
    probe = folder / f"create-cost-{uuid.uuid4().hex[:8]}"
    probe.mkdir(parents=True)
    fd = os.open(probe, os.O_RDONLY | os.O_DIRECTORY)
    took = []
    try:
        for i in range(count):
            t0 = time.perf_counter()
            os.close(os.open(str(i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644, dir_fd=fd))
            took.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
    return statistics.median(took)
