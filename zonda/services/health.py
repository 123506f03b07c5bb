"""Health: is the metadata DB reachable, and is a scheduler alive (judged by its heartbeat)?"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import text

from zonda.api.schemas import Health
from zonda.db.components import list_components
from zonda.db.engine import read_txn

if TYPE_CHECKING:
    from zonda.services.context import Services

log = logging.getLogger(__name__)

STALE_AFTER_BEATS = 5
"""A scheduler that missed this many heartbeats in a row counts as not alive (and is not counted)."""


def check_health(svc: Services) -> Health:
    """Status "ok" when the DB answers and a scheduler beat recently, else "degraded" (never raises)."""
    try:
        with read_txn(svc.engine) as conn:
            conn.execute(text("select 1"))
            schedulers = list_components(conn, kind="scheduler")
    except Exception as exc:
        log.warning("health check: metadata DB not reachable: %s", exc)
        return Health(status="degraded", db=False)
    limit = STALE_AFTER_BEATS * svc.settings.heartbeat_interval
    ages = [max(0.0, (svc.now() - c.heartbeat_at).total_seconds()) for c in schedulers]
    alive = [a for a in ages if a <= limit]
    return Health(
        status="ok" if alive else "degraded",
        db=True,
        scheduler_heartbeat_age_seconds=min(ages, default=None),
        schedulers=len(alive),
    )
