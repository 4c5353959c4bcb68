"""The one progress-bar set-up (scheduler/cli/progress.py) that transfers, job runs and waits use;
drawn for real on a terminal in test_cli_pfs.py::test_progress_bar_on_a_terminal_only."""

from __future__ import annotations

import io

import pytest
from rich.progress import DownloadColumn, MofNCompleteColumn, TimeElapsedColumn, TransferSpeedColumn

from scheduler.cli import progress


def test_byte_bars_show_size_and_speed_item_bars_count_and_time() -> None:
    bytes_bar, items_bar = progress.bar("bytes"), progress.bar("items", transient=False)
    assert {type(c) for c in bytes_bar.columns} >= {DownloadColumn, TransferSpeedColumn}
    assert {type(c) for c in items_bar.columns} >= {MofNCompleteColumn, TimeElapsedColumn}
    assert not {type(c) for c in bytes_bar.columns} & {MofNCompleteColumn, TimeElapsedColumn}
    assert bytes_bar.live.transient and not items_bar.live.transient
    assert bytes_bar.console.stderr and items_bar.console.stderr


def test_no_bar_unless_stderr_is_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not progress.on_terminal()
    assert not progress.wanted(None, many=True)
    with progress.meter("put", 10, progress.wanted(10)) as meter:
        stream = io.BytesIO(b"x")
        assert meter.wrap(stream) is stream  # no bar, no wrapper
