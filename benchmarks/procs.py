"""The server's processes, by role (from /proc), and the CPU time each one used."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
LISTEN = "0A"


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (index 0 is the state, 1 the ppid)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """Direct child processes of `pid`."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry))[1]) == pid:
                found.append(int(entry))
        except (OSError, IndexError):
            continue
    return sorted(found)


def descendants(pid: int) -> list[int]:
    """Child processes of `pid`, their children, and so on."""
    found: list[int] = []
    todo = children(pid)
    while todo:
        found.extend(todo)
        todo = [c for p in todo for c in children(p)]
    return sorted(found)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the process so far."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far."""
    return sum(cpu_split(pid))


def total_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far, added up."""
    return sum(cpu_seconds(pid) for pid in pids)


def _tcp_sockets() -> Iterator[tuple[int, int, bool, str]]:
    """(local port, remote port, listening, inode) of every TCP socket in /proc/net/tcp{,6}."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote = (int(parts[i].rsplit(":", 1)[1], 16) for i in (1, 2))
            yield local, remote, parts[3] == LISTEN, parts[9]


def listening_inodes(port: int) -> set[str]:
    """Socket inodes of TCP sockets listening on `port`."""
    return {inode for local, _, listening, inode in _tcp_sockets() if listening and local == port}


def socket_inodes(pid: int) -> set[str]:
    found: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def roles(supervisor: int, port: int) -> dict[str, list[int]]:
    """{"supervisor", "scheduler", "workers", "api", "dag-processor"} -> pids.

    The scheduler is the child whose children are the worker processes; the API is the child
    listening on the server's port; the DAG processor is the remaining component.
    """
    components = [p for p in children(supervisor) if "resource_tracker" not in cmdline(p)]
    if not components:
        raise RuntimeError(f"server {supervisor} has no component processes")
    scheduler = max(components, key=lambda p: len(children(p)))
    listening = listening_inodes(port)
    api = [p for p in components if p != scheduler and socket_inodes(p) & listening]
    rest = [p for p in components if p != scheduler and p not in api]
    return {
        "supervisor": [supervisor],
        "scheduler": [scheduler],
        "workers": children(scheduler),
        "api": api,
        "dag-processor": rest,
    }


def connected_inodes(port: int) -> set[str]:
    """Socket inodes of TCP connections whose remote end is `port` (e.g. clients of a broker)."""
    return {inode for _, remote, listening, inode in _tcp_sockets() if not listening and remote == port}


def listening_pids(port: int) -> list[int]:
    """Processes listening on `port` (needs the right to read their fds: same user or root)."""
    listening = listening_inodes(port)
    return sorted(int(e) for e in os.listdir("/proc") if e.isdigit() and socket_inodes(int(e)) & listening)


def celery_roles(
    supervisor: int, port: int, broker_port: int, pg_port: int, worker: int
) -> dict[str, list[int]]:
    """Roles of a server on the Celery executor and of one `zonda worker` (`worker`: its main pid):
    the scheduler is the component connected to the broker; "workers" are the slot processes (and
    the fork server they are forked from);
    "broker" and "postgres" are the servers listening on their ports and their children (all of
    PostgreSQL's backends, other users' included)."""
    components = [p for p in children(supervisor) if "resource_tracker" not in cmdline(p)]
    listening = listening_inodes(port)
    api = [p for p in components if socket_inodes(p) & listening]
    brokered = connected_inodes(broker_port)
    scheduler = [p for p in components if p not in api and socket_inodes(p) & brokered]
    if len(scheduler) != 1:
        raise RuntimeError(f"expected one component connected to the broker, found {scheduler}")
    broker = listening_pids(broker_port)
    postmaster = listening_pids(pg_port)
    return {
        "supervisor": [supervisor],
        "scheduler": scheduler,
        "api": api,
        "dag-processor": [p for p in components if p not in api and p not in scheduler],
        "worker supervisor": [worker],
        "workers": descendants(worker),
        "broker": broker + [c for b in broker for c in children(b)],
        "postgres": postmaster + [c for p in postmaster for c in children(p)],
    }


def cpu_snapshot(by_role: dict[str, list[int]]) -> dict[int, tuple[float, float]]:
    """(user, system) CPU seconds of every listed process that is still alive."""
    snapshot: dict[int, tuple[float, float]] = {}
    for pids in by_role.values():
        for pid in pids:
            try:
                fields = _stat_fields(pid)
            except (OSError, IndexError):
                continue
            snapshot[pid] = (int(fields[11]) / TICKS, int(fields[12]) / TICKS)
    return snapshot


def role_sums(
    by_role: dict[str, list[int]], snapshot: dict[int, tuple[float, float]], pids: set[int]
) -> tuple[dict[str, float], dict[str, float]]:
    """({role: CPU seconds}, {role: system CPU seconds}) over the processes in `pids` only: compare two
    snapshots over the processes alive at both, so one that exits in between (a PostgreSQL backend)
    is left out instead of making its role's difference negative."""
    total: dict[str, float] = {}
    system: dict[str, float] = {}
    for role, members in by_role.items():
        present = [snapshot[p] for p in members if p in pids and p in snapshot]
        total[role] = sum(user + kernel for user, kernel in present)
        system[role] = sum(kernel for _, kernel in present)
    return total, system
