"""What a scheduler writes with its heartbeat: its own beat (with the tasks it has queued that have
not started, per tenant and broker queue), its workers' beats, and, now and then,
the removal of schedulers and workers that have been silent for longer than `gone_retention`
(a decommissioned host would otherwise stay listed as missing, and the system page red, forever)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection

from zonda.db import components, workers
from zonda.db.clock import DbClock

log = logging.getLogger(__name__)

PRUNE_INTERVAL = timedelta(minutes=1)
"""How often a scheduler looks for schedulers and workers to forget."""


def heartbeat_write(
    clock: DbClock,
    component_id: str,
    now: datetime,
    seen: Sequence[workers.Worker],
    forget_before: datetime | None,
    waiting: Mapping[tuple[str, str], int] | None = None,
) -> Callable[[Connection], None]:
    """The write of one heartbeat, which also measures the scheduler's `clock` against the DB's again;
    with `forget_before`, also drop what has been silent since then. `waiting`: queued tasks not
    started, per (tenant, broker queue), from an executor that knows."""
    items = None
    if waiting is not None:
        items = [{"tenant": t, "queue": q, "tasks": n} for (t, q), n in sorted(waiting.items())]

    def write(conn: Connection) -> None:
        clock.sync(conn)
        components.heartbeat(conn, component_id, now, items)
        if seen:
            workers.record_heartbeats(conn, seen)
        if forget_before is not None:
            gone = components.prune_components(conn, forget_before) + workers.prune_workers(
                conn, forget_before
            )
            if gone:
                log.info(
                    "forgot %d scheduler(s) and worker(s) silent since %s", gone, forget_before.isoformat()
                )

    return write
