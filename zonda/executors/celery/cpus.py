"""How many CPUs a worker's slot processes can run on: its default concurrency, and what its
heartbeats tell schedulers so that short tasks go to no more slots at once than there are CPUs.

The process's CPU affinity, lowered to the CPU quota of its cgroup (cgroup v2 `cpu.max`), where
one is set: a container limited to 2 CPUs on a 64-CPU machine has 2.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus(proc_cgroup: Path = Path("/proc/self/cgroup"), cgroup_root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process can use, at least 1."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(proc_cgroup, cgroup_root)
    return max(1, min(affinity, math.ceil(quota)) if quota is not None else affinity)


def cgroup_cpu_quota(proc_cgroup: Path, cgroup_root: Path) -> float | None:
    """CPUs' worth of time the process's cgroup v2 may use (quota / period), or None where no
    quota is set or cgroup v2 is not mounted."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    group = next((line[3:] for line in lines if line.startswith("0::")), None)
    if group is None:
        return None
    try:
        quota, period = (cgroup_root / group.lstrip("/") / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None
