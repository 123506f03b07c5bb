"""The metadata DB's clock, read through this process's own: the time schedulers on several machines
agree on for leases and heartbeats (ADR 0005).

A lease runs until a time. A scheduler whose own clock ran ahead of another's by more than the
lease would find that scheduler's leases expired and take its runs while it lives; one whose clock
ran behind would take a dead scheduler's runs late. So a scheduler reads the time as its own clock
plus an offset to PostgreSQL's `clock_timestamp()`, measured at start and with every heartbeat
from the midpoint of one round trip (its error is at most half the round trip). SQLite lives on
the scheduler's machine, whose clock it is: the offset stays 0.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from zonda.clock import utc_now


class DbClock:
    """Callable like `utc_now`, in the DB's time once `sync`ed; `sync` may run on another thread."""

    def __init__(self, local: Callable[[], datetime] = utc_now) -> None:
        self.local = local
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return self.local() + self.offset

    def sync(self, conn: Connection) -> None:
        """Measure the offset to the DB's clock (one round trip; nothing on SQLite)."""
        if conn.dialect.name != "postgresql":
            return
        before = self.local()
        db_time: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
        after = self.local()
        self.offset = db_time - (before + (after - before) / 2)
