"""bench/cpu.py: the CPU a timed block spent, machine-wide and in this process, and the ceiling
it puts on a rate. Real /proc/stat and real work; the notes' arithmetic on given figures."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bench.loader import load_bench

cpu = load_bench("cpu")


def test_the_machine_counts_what_a_child_process_spends() -> None:
    # What another process spends (a sandbox's runner, a server) is the machine's, not this one's.
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    with cpu.cpu_spent() as spent:
        subprocess.run([sys.executable, "-c", busy], check=True)
    assert spent.machine is not None
    assert spent.machine >= 0.25  # its 0.3 s of CPU, within a tick or two
    assert spent.own < 0.2  # this process only waited
    assert spent.wall >= 0.3


def test_own_cpu_counts_this_process() -> None:
    with cpu.cpu_spent() as spent:
        data = b"x" * (1 << 20)
        for _ in range(200):
            hashlib.sha256(data).digest()
    assert spent.own > 0.0
    assert spent.machine is not None and spent.machine >= spent.own - 0.05


def test_per_item_is_milliseconds() -> None:
    assert cpu.Spent(machine=2.0, own=1.0, wall=3.0).per(1000) == (pytest.approx(2.0), pytest.approx(1.0))
    assert cpu.Spent(machine=None, own=1.0).per(10) == (None, pytest.approx(100.0))


def test_ceiling_note_gives_the_rate_the_cpu_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu.os, "cpu_count", lambda: 2)
    herd = [cpu.Spent(machine=10.0, own=4.0), cpu.Spent(machine=12.0, own=5.0), cpu.Spent(machine=11.0, own=6.0)]
    anchor = [cpu.Spent(machine=4.0, own=0.5)] * 3
    note = cpu.ceiling_note(herd, anchor, 2000, anchor_rate=800.0, target=0.6)
    # medians: herd 11 s / 2000 = 5.5 ms (own 2.5), anchor 2.0 ms; 2 cores -> 2000 / 5.5 = 364/s
    assert "herd 5.50 ms (2.50 in its own process" in note
    assert "the anchor 2.00 ms" in note
    assert "at most 364 datums/s, 0.45x of the anchor's rate" in note
    # 0.6 x 800/s = 480/s on 2 cores: 2000 / 480 = 4.17 ms a datum at most
    assert "0.6x would need at most 4.17 ms a datum" in note


def test_notes_say_when_the_machine_cpu_is_unknown() -> None:
    unknown = [cpu.Spent(machine=None, own=1.0)]
    assert "unknown" in cpu.ceiling_note(unknown, unknown, 10, 100.0, 0.6)
    assert "unknown" in cpu.machine_ceiling_note(unknown[0], 10, "everything")


def test_machine_ceiling_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu.os, "cpu_count", lambda: 2)
    note = cpu.machine_ceiling_note(cpu.Spent(machine=16.0, own=1.0), 2000, "all of it")
    assert "(all of it; /proc/stat): 8.00 ms" in note
    assert "at most 250 datums/s" in note


def test_no_proc_stat_gives_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cpu, "PROC_STAT", tmp_path / "missing")
    assert cpu.machine_busy_seconds() is None
    with cpu.cpu_spent() as spent:
        pass
    assert spent.machine is None


def test_cpu_by_group_counts_a_process_and_the_children_it_reaped() -> None:
    # A shell whose forks spend the CPU, as the container's runner does: they end in its count.
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    script = f'"{sys.executable}" -c "$1"; "{sys.executable}" -c "$1"; read _'
    shell = subprocess.Popen(["sh", "-c", script, "sh", busy], stdin=subprocess.PIPE)
    try:
        def group(process: object) -> str | None:
            return "the shell" if getattr(process, "argv", ())[:2] == ("sh", "-c") else None

        with cpu.cpu_by_group(group) as parts:
            deadline = time.monotonic() + 30
            while cpu.process_seconds().get(shell.pid, (None, 0.0))[1] < 0.5 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        assert shell.stdin is not None
        shell.stdin.close()
        shell.wait()
    assert set(parts) <= {"the shell"}
    assert parts.get("the shell", 0.0) >= 0.5  # both children's 0.3 s, reaped by the shell


def test_a_process_is_named_by_its_comm_argv_and_cgroup() -> None:
    (process, seconds) = cpu.process_seconds()[os.getpid()]
    assert process.name.startswith("python") and Path(process.argv[0]).name.startswith("python")
    assert "pytest" in " ".join(process.argv) and process.cgroup.strip() and seconds > 0
