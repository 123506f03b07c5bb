"""Pools: named slot counts that limit how many tasks using them run at once."""

from __future__ import annotations

from sqlalchemy import Connection, delete, select

from zonda.api.schemas import PoolRecord
from zonda.db.dialect import upsert
from zonda.db.schema import pools


def list_pools(conn: Connection) -> list[PoolRecord]:
    rows = conn.execute(select(pools).order_by(pools.c.name))
    return [PoolRecord(name=r.name, slots=r.slots, description=r.description) for r in rows]


def set_pool(conn: Connection, pool: PoolRecord) -> None:
    upsert(conn, pools, [pool.model_dump()], ["name"])


def delete_pool(conn: Connection, name: str) -> bool:
    return bool(conn.execute(delete(pools).where(pools.c.name == name)).rowcount)
