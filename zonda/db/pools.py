"""Pools: named slot counts of a tenant that limit how many of its tasks using them run at once."""

from __future__ import annotations

from sqlalchemy import Connection, and_, delete, select

from zonda.api.schemas import PoolRecord
from zonda.db.dialect import upsert
from zonda.db.schema import pools


def list_pools(conn: Connection, tenant_id: str) -> list[PoolRecord]:
    """The tenant's pools, by name."""
    query = select(pools).where(pools.c.tenant_id == tenant_id).order_by(pools.c.name)
    return [PoolRecord.model_validate(r._asdict()) for r in conn.execute(query)]


def set_pool(conn: Connection, pool: PoolRecord) -> None:
    upsert(conn, pools, [pool.model_dump()], ["tenant_id", "name"])


def delete_pool(conn: Connection, tenant_id: str, name: str) -> bool:
    stmt = delete(pools).where(and_(pools.c.tenant_id == tenant_id, pools.c.name == name))
    return bool(conn.execute(stmt).rowcount)


def pool_sizes(conn: Connection) -> dict[tuple[str, str], int]:
    """Every tenant's pools' slots, by (tenant, name): what the scheduler enforces."""
    rows = conn.execute(select(pools.c.tenant_id, pools.c.name, pools.c.slots))
    return {(r.tenant_id, r.name): r.slots for r in rows}
