"""How busy the machine was: this benchmark's CPU time versus everything else's (shared machines)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
QUIET_BUSY = 0.25
QUIET_WINDOW_S = 2.0


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot (everything but idle and iowait), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / TICKS


def own_seconds() -> float:
    """CPU seconds of this process and of its reaped children (the server tree once it has stopped)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class LoadMeter:
    """Started at the beginning of a configuration; `result()` at its end."""

    began: float
    busy0: float
    own0: float
    load0: float

    @classmethod
    def start(cls) -> LoadMeter:
        return cls(time.monotonic(), machine_busy_seconds(), own_seconds(), os.getloadavg()[0])

    def result(self) -> dict[str, float]:
        wall = time.monotonic() - self.began
        busy = machine_busy_seconds() - self.busy0
        own = own_seconds() - self.own0
        cores = os.cpu_count() or 1
        return {
            "wall_s": wall,
            "cpu_available_s": wall * cores,
            "cpu_busy_s": busy,
            "cpu_benchmark_s": own,
            "cpu_other_s": max(0.0, busy - own),
            "loadavg_start": self.load0,
            "loadavg_end": os.getloadavg()[0],
        }


def busy_fraction(window_s: float = QUIET_WINDOW_S) -> float:
    """Share of all CPUs busy over the next `window_s` seconds."""
    before = machine_busy_seconds()
    time.sleep(window_s)
    return (machine_busy_seconds() - before) / (window_s * (os.cpu_count() or 1))


def wait_quiet(max_wait_s: float) -> float:
    """Wait (up to `max_wait_s`) until the machine is under QUIET_BUSY busy; returns the last share seen."""
    deadline = time.monotonic() + max_wait_s
    share = busy_fraction()
    while share > QUIET_BUSY and time.monotonic() < deadline:
        share = busy_fraction()
    return share


def describe(figures: dict[str, float]) -> str:
    return (
        f"machine CPU busy {figures['cpu_busy_s']:.0f} of {figures['cpu_available_s']:.0f} CPU-s available "
        f"({100 * figures['cpu_busy_s'] / max(figures['cpu_available_s'], 1e-9):.0f}%): this benchmark "
        f"(client + server tree) {figures['cpu_benchmark_s']:.0f} CPU-s, other processes on the machine "
        f"{figures['cpu_other_s']:.0f} CPU-s; load average {figures['loadavg_start']:.1f} at start, "
        f"{figures['loadavg_end']:.1f} at end"
    )
