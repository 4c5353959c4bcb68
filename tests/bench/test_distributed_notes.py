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


def test_row_12_splits_the_cpu_by_the_part_of_herd_a_process_is() -> None:
    def process(name: str, argv: tuple[str, ...] = (), cgroup: str = "0::/\n") -> object:
        return distributed.Process(name, argv, cgroup)

    herd = tuple(distributed.HERD)
    assert distributed.part_of_herd(process("dockerd")) == "the Docker engine"
    assert distributed.part_of_herd(process("containerd-shim", cgroup="4:memory:/docker/ab\n")) == "the Docker engine"
    assert distributed.part_of_herd(process("busybox", ("sh",), "8:pids:/docker/ab12\n")) == "the container"
    assert distributed.part_of_herd(process("python", (*herd, "worker", "--concurrency", "1"))) == "the worker"
    assert distributed.part_of_herd(process("python", (*herd, "scheduler"))) == "the scheduler"
    assert distributed.part_of_herd(process("redis-server", ("redis-server",))) == "Redis"
    assert distributed.part_of_herd(process("python", ("python", "-c", "pass", "worker"))) is None  # not herd's
    assert distributed.part_of_herd(process("sshd")) is None
    note = distributed.cpu_split_note({"the worker": 3.2, "the container": 7.6, "Redis": 0.06}, 2000)
    assert note == "of it the container 3.80 ms, the worker 1.60 ms, Redis 0.03 ms"
