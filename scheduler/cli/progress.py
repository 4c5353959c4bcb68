"""Progress bars on a terminal (rich, on stderr): transfers, jobs, waits; no-ops everywhere else."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from storage.streams import PassThrough

if TYPE_CHECKING:
    from rich.progress import Progress

LARGE_TRANSFER = 4 * 1024 * 1024  # below this a bar only flickers


class Meter:
    """Counts bytes into a rich task, or nowhere when progress is off."""

    def __init__(self, progress: Any = None, task: Any = None) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int) -> None:
        if self._progress is not None and n:
            self._progress.advance(self._task, n)

    def wrap(self, stream: BinaryIO) -> BinaryIO:
        """A reader that advances the bar as it is read; the stream itself when progress is off."""
        if self._progress is None:
            return stream
        return PassThrough(stream, on_count=self.advance)  # type: ignore[return-value]


def on_terminal() -> bool:
    """Whether a person watches stderr: bars are drawn only then, never into pipes or logs."""
    return sys.stderr.isatty()


def bar(counting: Literal["bytes", "items"], *, transient: bool = True) -> Progress:
    """The one rich Progress set-up, on stderr: the description, a bar, then for `bytes` the
    size and speed, for `items` done/total and the time elapsed. A context manager; callers
    check `on_terminal()` (or `wanted`) first."""
    # Imported here: rich costs ~50 ms and most runs never draw a bar.
    from rich.console import Console
    from rich.progress import (
        BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn,
    )

    counts = (DownloadColumn(), TransferSpeedColumn()) if counting == "bytes" else (MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(TextColumn("{task.description}"), BarColumn(), *counts, console=Console(stderr=True),
                    transient=transient)


def wanted(total: int | None, many: bool = False) -> bool:
    """A bar is shown on a terminal for big or unknown-size transfers and for folders."""
    if not on_terminal():
        return False
    return many or total is None or total >= LARGE_TRANSFER


@contextmanager
def meter(label: str, total: int | None, enabled: bool) -> Iterator[Meter]:
    """A Meter over a rich bar on stderr when `enabled` (see `wanted`), else a silent one."""
    if not enabled:
        yield Meter()
        return
    with bar("bytes") as progress:
        yield Meter(progress, progress.add_task(label, total=total))
