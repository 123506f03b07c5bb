"""Health: is the metadata DB reachable, and is a scheduler alive (judged by its heartbeat)?"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import text

from zonda.api.schemas import Health
from zonda.core.liveness import SCHEDULER_BEATS, alive, heartbeat_age
from zonda.db.components import list_components
from zonda.db.engine import read_txn

if TYPE_CHECKING:
    from zonda.services.context import Services

log = logging.getLogger(__name__)


def check_health(svc: Services) -> Health:
    """Status "ok" when the DB answers and a scheduler beat recently, else "degraded" (never raises)."""
    try:
        with read_txn(svc.engine) as conn:
            conn.execute(text("select 1"))
            schedulers = list_components(conn, kind="scheduler")
    except Exception as exc:
        log.warning("health check: metadata DB not reachable: %s", exc)
        return Health(status="degraded", db=False)
    interval = svc.settings.heartbeat_interval
    ages = [heartbeat_age(svc.now(), c.heartbeat_at) for c in schedulers]
    live = [a for a in ages if alive(a, interval, SCHEDULER_BEATS)]
    return Health(
        status="ok" if live else "degraded",
        db=True,
        scheduler_heartbeat_age_seconds=min(ages, default=None),
        schedulers=len(live),
    )
