"""Tenants: the teams that own DAG folders, runs, pools, secrets and quotas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from zonda.api.schemas.identity import TenantRecord
from zonda.db.schema import dags, pools, runs, secrets, tenants


def list_tenants(conn: Connection, only: frozenset[str] | None = None) -> list[TenantRecord]:
    """Every tenant, or those in `only`, by id."""
    query = select(tenants).order_by(tenants.c.tenant_id)
    if only is not None:
        query = query.where(tenants.c.tenant_id.in_(sorted(only)))
    return [TenantRecord.model_validate(r._asdict()) for r in conn.execute(query)]


def get_tenant(conn: Connection, tenant_id: str) -> TenantRecord | None:
    row = conn.execute(select(tenants).where(tenants.c.tenant_id == tenant_id)).first()
    return TenantRecord.model_validate(row._asdict()) if row else None


def create_tenant(conn: Connection, tenant_id: str, fields: dict[str, Any], now: datetime) -> None:
    conn.execute(insert(tenants).values(tenant_id=tenant_id, created_at=now, **fields))


def update_tenant(conn: Connection, tenant_id: str, fields: dict[str, Any]) -> None:
    if fields:
        conn.execute(update(tenants).where(tenants.c.tenant_id == tenant_id).values(**fields))


def delete_tenant(conn: Connection, tenant_id: str) -> bool:
    """Delete the tenant and what only it owns (pools, secrets; memberships cascade)."""
    for owned in (pools, secrets):
        conn.execute(delete(owned).where(owned.c.tenant_id == tenant_id))
    return bool(conn.execute(delete(tenants).where(tenants.c.tenant_id == tenant_id)).rowcount)


def owns_anything(conn: Connection, tenant_id: str) -> bool:
    """Whether the tenant has any DAG or run (it cannot be deleted then)."""
    for table in (dags, runs):
        if conn.execute(select(table.c.tenant_id).where(table.c.tenant_id == tenant_id).limit(1)).first():
            return True
    return False
