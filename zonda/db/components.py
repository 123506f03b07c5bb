"""Heartbeats of the server's long-running parts (schedulers today; workers and triggerers later)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update

from zonda.db.dialect import upsert
from zonda.db.schema import components


@dataclass(frozen=True)
class Component:
    id: str
    kind: str
    hostname: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    waiting: list[dict[str, Any]] | None = None
    """A scheduler's queued tasks not yet started, as `{"tenant", "queue", "tasks"}` items (Celery)."""


def register(conn: Connection, component: Component) -> None:
    upsert(conn, components, [component.__dict__], ["id"])


def heartbeat(
    conn: Connection, component_id: str, now: datetime, waiting: list[dict[str, Any]] | None = None
) -> None:
    conn.execute(
        update(components).where(components.c.id == component_id).values(heartbeat_at=now, waiting=waiting)
    )


def unregister(conn: Connection, component_id: str) -> None:
    conn.execute(delete(components).where(components.c.id == component_id))


def registered(conn: Connection, component_ids: Collection[str]) -> set[str]:
    """Those of `component_ids` still registered: a scheduler unregisters only once its last
    changes are stored, so one still here may have sent work it never stored."""
    if not component_ids:
        return set()
    query = select(components.c.id).where(components.c.id.in_(list(component_ids)))
    return {row[0] for row in conn.execute(query)}


def prune_components(conn: Connection, before: datetime) -> int:
    """Delete components whose last heartbeat is older than `before`; returns how many."""
    return int(conn.execute(delete(components).where(components.c.heartbeat_at < before)).rowcount or 0)


def list_components(conn: Connection, kind: str | None = None) -> list[Component]:
    query = select(components).order_by(components.c.id)
    if kind:
        query = query.where(components.c.kind == kind)
    return [Component(**r._mapping) for r in conn.execute(query)]
