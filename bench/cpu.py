"""CPU spent over a timed block: by the whole machine (every process, every core) and by this one.

A figure of datums a second is bounded by the CPU each datum costs: on C cores nothing that
spends S seconds of CPU a datum goes faster than C / S datums a second, however well it overlaps.
Reading both sides' CPU in the same run turns "herd is slower than its anchor" into where the
ceiling is and whose CPU fills it. The machine's CPU comes from /proc/stat (its first line: user,
nice, system, irq, softirq and steal jiffies over all cores; idle and iowait are not spent), so it
counts the sandboxes' and the servers' processes, which this process never waits for. Anything
else running on the machine counts too: the bench machine runs nothing else.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")
_BUSY = (0, 1, 2, 5, 6, 7)  # user nice system (idle iowait) irq softirq steal


def machine_busy_seconds() -> float | None:
    """CPU seconds every core has spent since boot (None without a Linux /proc)."""
    try:
        first = PROC_STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    ticks = [int(value) for value in first[1:]]
    return sum(ticks[i] for i in _BUSY if i < len(ticks)) / os.sysconf("SC_CLK_TCK")


@dataclass
class Spent:
    """CPU seconds over a block, filled in when it ends: the machine's (None when unknown) and
    this process's own; `wall` its wall seconds."""

    machine: float | None = None
    own: float = 0.0
    wall: float = 0.0

    def per(self, count: int) -> tuple[float | None, float]:
        """(machine, own) milliseconds of CPU per item of `count`."""
        machine = None if self.machine is None else self.machine / count * 1000
        return machine, self.own / count * 1000


@contextmanager
def cpu_spent() -> Iterator[Spent]:
    spent = Spent()
    machine0, times0, wall0 = machine_busy_seconds(), os.times(), time.perf_counter()
    try:
        yield spent
    finally:
        machine1, times1 = machine_busy_seconds(), os.times()
        spent.wall = time.perf_counter() - wall0
        spent.own = (times1.user - times0.user) + (times1.system - times0.system)
        if machine0 is not None and machine1 is not None:
            spent.machine = machine1 - machine0


@dataclass(frozen=True)
class Process:
    """What names a process: its `comm`, its argv and its cgroup lines (to tell a container's)."""

    name: str
    argv: tuple[str, ...]
    cgroup: str


def process_seconds() -> dict[int, tuple[Process, float]]:
    """Every process's CPU seconds so far, with the CPU of the children it has reaped (a shell's
    forks count in the shell once it waited for them); {} without a Linux /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[Process, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = tuple((entry / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1])
            cgroup = (entry / "cgroup").read_text()
        except OSError:
            continue  # it ended meanwhile
        fields = stat[stat.rindex(")") + 2:].split()
        seconds = sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick  # utime stime cutime cstime
        out[int(entry.name)] = (Process(stat[stat.index("(") + 1:stat.rindex(")")], argv, cgroup), seconds)
    return out


@contextmanager
def cpu_by_group(group: Callable[[Process], str | None]) -> Iterator[dict[str, float]]:
    """CPU seconds over a block by group of processes (`group` names a process's, None: not
    counted), filled in when it ends. A process that ended unreaped by one alive at the end
    is missing: the machine's total (`cpu_spent`) is the whole."""
    totals: dict[str, float] = {}
    before = process_seconds()
    try:
        yield totals
    finally:
        for pid, (process, seconds) in process_seconds().items():
            name = group(process)
            if name is None:
                continue
            earlier = before.get(pid)
            start = earlier[1] if earlier is not None and earlier[0] == process else 0.0
            totals[name] = totals.get(name, 0.0) + max(0.0, seconds - start)


def ceiling_note(herd: list[Spent], anchor: list[Spent], count: int, anchor_rate: float, target: float) -> str:
    """What the CPU a datum makes of the rate: herd's and the anchor's CPU a datum (medians of
    the rounds), the most datums a second herd's CPU allows on this machine's cores, and the CPU
    a datum the `target` ratio would allow at most."""
    herd_ms = [s.per(count) for s in herd]
    anchor_ms = [s.per(count) for s in anchor]
    if any(m is None for m, _ in herd_ms + anchor_ms):
        return "CPU a datum: unknown here (no /proc/stat)"
    med = statistics.median
    machine = med(m for m, _ in herd_ms if m is not None)
    own = med(o for _, o in herd_ms)
    bare = med(m for m, _ in anchor_ms if m is not None)
    cores = os.cpu_count() or 1
    ceiling = cores * 1000 / machine
    return (f"CPU a datum, every process of the machine (/proc/stat, median of {len(herd)}): herd {machine:.2f} ms "
            f"({own:.2f} in its own process: scheduler, records, staging, outputs; the rest the sandbox's runner "
            f"and user code), the anchor {bare:.2f} ms; {cores} cores fully busy give herd at most "
            f"{ceiling:.0f} datums/s, {ceiling / anchor_rate:.2f}x of the anchor's rate; {target:.1f}x would need "
            f"at most {cores * 1000 / (target * anchor_rate):.2f} ms a datum")


def machine_ceiling_note(spent: Spent, count: int, who: str) -> str:
    """The CPU a datum of one timed block, every process of the machine, and the rate it allows."""
    machine, _ = spent.per(count)
    if machine is None:
        return "CPU a datum: unknown here (no /proc/stat)"
    cores = os.cpu_count() or 1
    return (f"CPU a datum, every process of the machine ({who}; /proc/stat): {machine:.2f} ms; {cores} cores fully "
            f"busy allow at most {cores * 1000 / machine:.0f} datums/s")

