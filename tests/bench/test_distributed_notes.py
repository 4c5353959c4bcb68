"""bench/distributed.py's row 13 note: the bound the serial parts of a job put on 2 workers vs 1.
job_timeline itself runs in the smoke run (tests/bench/test_bench_smoke.py) on real results."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.loader import load_bench

distributed = load_bench("distributed")


def timeline(job: float, lead: float, tail: float, spread: float = 0.0, attempt: float = 0.028) -> dict[str, float]:
    return {"job": job, "lead": lead, "tail": tail, "spread": spread, "attempt": attempt}


def test_serial_parts_bound_the_ratio() -> None:
    # 16 s on 1 worker, 0.8 s of it serial: 15.2 s of datums split in two, beside the same 0.8 s
    note = distributed.two_workers_note(timeline(16.0, 0.7, 0.1), timeline(8.8, 0.7, 0.1, 0.18, 0.0297))
    assert f"bound the ratio at {16.0 / (0.8 + 7.6):.2f}x" in note
    assert "started 0.70 s into the job" in note and "0.18 s apart" in note
    assert "28.0 ms with 1 worker, 29.7 ms with 2" in note


@pytest.mark.parametrize("lead", [0.0, 0.5, 2.0])
def test_a_job_without_serial_parts_could_double(lead: float) -> None:
    note = distributed.two_workers_note(timeline(10.0 + lead, lead, 0.0), timeline(5.0 + lead, lead, 0.0))
    bound = (10.0 + lead) / (lead + 5.0)
    assert f"bound the ratio at {bound:.2f}x" in note


def test_disk_note_gives_both_creates_and_the_disk_rate() -> None:
    note = distributed.disk_note(Path("/dev/shm/herd-bench-x"), 5e-6, (151.4, 4.2e-4))
    assert "Redis's log in /dev/shm (bench/tmpfs.py), where a file create took 5 us" in note
    assert "a create took 420 us just before the same job there made 151 datums/s" in note
