"""How many CPUs a worker's slot processes can run on: its default concurrency, and what its
heartbeats tell schedulers so that short tasks go to no more slots at once than there are CPUs.

The process's CPU affinity, lowered to the smallest CPU quota of its cgroup and the cgroup's
parents (v1 or v2), where one is set: a container or pod limited to 2 CPUs on a 64-CPU machine has 2.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus(proc_cgroup: Path = Path("/proc/self/cgroup"), cgroup_root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process can use, at least 1."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(proc_cgroup, cgroup_root)
    return max(1, min(affinity, math.ceil(quota)) if quota is not None else affinity)


def cgroup_cpu_quota(proc_cgroup: Path, cgroup_root: Path) -> float | None:
    """CPUs' worth of time the process's cgroup may use (quota / period): cgroup v1's
    `cpu.cfs_quota_us` / `cpu.cfs_period_us` where the `cpu` controller is on v1, else v2's
    `cpu.max`, the smallest of the group's and its ancestors'. None where no quota is set or none
    can be read. The group is looked for at its path under the mount, then at the mount itself: a
    container that does not see the host's path sees its own group there."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    groups: dict[str, tuple[Path, str]] = {}
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, group = rest.partition(":")
        if "cpu" in controllers.split(","):
            groups["v1"] = (cgroup_root / controllers, group)
        elif hierarchy == "0" and not controllers:
            groups["v2"] = (cgroup_root, group)
    if "v1" in groups:
        return _read_quota(*groups["v1"], _v1_quota)
    if "v2" in groups:
        return _read_quota(*groups["v2"], _v2_quota)
    return None


def _read_quota(mount: Path, group: str, read: Callable[[Path], float | None]) -> float | None:
    """The smallest quota of the group and of its ancestors up to the mount (a parent's quota
    limits its children too: a Kubernetes pod's, above its containers'). A level whose quota
    cannot be read counts as none."""
    folder = mount / group.lstrip("/")
    if not folder.is_dir():
        folder = mount
    quotas: list[float] = []
    while True:
        try:
            quota = read(folder)
        except (OSError, ValueError, ZeroDivisionError):
            quota = None
        if quota is not None:
            quotas.append(quota)
        if folder == mount or mount not in folder.parents:
            return min(quotas, default=None)
        folder = folder.parent


def _v1_quota(folder: Path) -> float | None:
    quota = int((folder / "cpu.cfs_quota_us").read_text())
    return None if quota < 0 else quota / int((folder / "cpu.cfs_period_us").read_text())


def _v2_quota(folder: Path) -> float | None:
    quota, period = (folder / "cpu.max").read_text().split()
    return None if quota == "max" else int(quota) / int(period)
