"""Commands to the scheduler that owns a run (clear, ...): written by the API, applied by the scheduler."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from zonda.db.schema import commands


@dataclass(frozen=True)
class Command:
    id: int
    kind: str
    run_id: str
    payload: dict[str, Any]


def add_command(conn: Connection, kind: str, run_id: str, payload: dict[str, Any], now: datetime) -> int:
    """Record a command; returns its id. The caller wakes the scheduler after commit."""
    result = conn.execute(
        insert(commands)
        .values(kind=kind, run_id=run_id, payload=payload, created_at=now)
        .returning(commands.c.id)
    )
    return int(result.scalar_one())


def pending_commands(conn: Connection, limit: int = 500) -> list[Command]:
    rows = conn.execute(
        select(commands.c.id, commands.c.kind, commands.c.run_id, commands.c.payload)
        .where(commands.c.done_at.is_(None))
        .order_by(commands.c.id)
        .limit(limit)
    )
    return [Command(r.id, r.kind, r.run_id, r.payload) for r in rows]


_PENDING_KINDS = (
    select(commands.c.kind)
    .where(commands.c.done_at.is_(None), commands.c.run_id == bindparam("run_id"))
    .order_by(commands.c.id)
)
"""Built once: every read of a run asks."""


def pending_kinds(conn: Connection, run_id: str) -> list[str]:
    """The kinds of the run's commands the scheduler has not applied yet (e.g. ["mark"])."""
    return list(conn.execute(_PENDING_KINDS, {"run_id": run_id}).scalars())


def mark_done(conn: Connection, ids: list[int], now: datetime) -> None:
    if ids:
        conn.execute(update(commands).where(commands.c.id.in_(ids)).values(done_at=now))
