"""Pausing Python's cyclic garbage collector while many acyclic objects are made.

Every 700 container objects made start a collection, and every tenth of those walks the older
generation too: making 100,000 small models or table rows beside a 100,000-file manifest spent
more time in the collector than in the work (bench/planning.py). Parsed records, FileInfos,
table rows, plans and indexes hold no cycle, so nothing is left for it to find. What the pause
made joins the oldest generation when it ends, where only a full collection walks it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused(pause: bool = True) -> Iterator[None]:
    """Pause the cyclic garbage collector (when `pause`) for the block.

    The collector is process-wide: another thread's allocations meanwhile are not collected
    either, for as long as the block lasts, and one who had paused it before finds it paused."""
    paused = pause and gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            # What the block made and kept joins the oldest generation unscanned (mypy does the
            # same after loading its graph): enabled alone, the next allocation would start a
            # collection walking all of it, which was most of the pause's saving. Garbage cycles
            # among it, if any, go at the next full collection.
            if gc.get_freeze_count() == 0:  # unfreeze would also thaw what another had frozen
                gc.freeze()
                gc.unfreeze()
            gc.enable()
