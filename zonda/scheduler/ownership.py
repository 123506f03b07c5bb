"""Which schedulers are gone: their runs can be taken over without waiting for leases to expire."""

from __future__ import annotations

import os
import socket

from sqlalchemy import Connection

from zonda.db import components


def new_scheduler_id() -> str:
    """A scheduler's id: unique per process, and says where it runs."""
    return f"scheduler-{socket.gethostname()}-{os.getpid()}"


def dead_local_schedulers(conn: Connection, me: str) -> list[str]:
    """Schedulers registered on this host whose process no longer exists (e.g. killed, then restarted)."""
    host = socket.gethostname()
    return [
        c.id
        for c in components.list_components(conn, "scheduler")
        if c.hostname == host and c.id != me and not _alive(c.pid)
    ]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
