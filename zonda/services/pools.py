"""Pools of a tenant: list (readers), create or resize, delete (its admins); the scheduler picks
changes up when woken."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zonda.api.schemas import PoolRecord, PoolSpec
from zonda.core.permissions import Action
from zonda.db import pools as db
from zonda.db.engine import read_txn, write_txn
from zonda.errors import NotFoundError
from zonda.services.access import require, require_tenant
from zonda.services.audit import record

if TYPE_CHECKING:
    from zonda.services.context import Services


def list_pools(svc: Services, tenant: str) -> list[PoolRecord]:
    require_tenant(svc, tenant, Action.READ, f"tenant '{tenant}'")
    with read_txn(svc.engine) as conn:
        return db.list_pools(conn, tenant)


def set_pool(svc: Services, tenant: str, name: str, spec: PoolSpec) -> PoolRecord:
    """Create the tenant's pool `name` or change its slots."""
    require_tenant(svc, tenant, Action.ADMINISTER, f"pool '{name}' of tenant '{tenant}'")
    pool = PoolRecord(tenant_id=tenant, name=name, slots=spec.slots, description=spec.description)
    with write_txn(svc.engine) as conn:
        db.set_pool(conn, pool)
        record(conn, svc, tenant, "pool.set", name, spec.model_dump())
    svc.waker.wake("pools")
    return pool


def delete_pool(svc: Services, tenant: str, name: str) -> None:
    require(svc, tenant, Action.ADMINISTER, f"pool '{name}' of tenant '{tenant}'")
    with write_txn(svc.engine) as conn:
        if not db.delete_pool(conn, tenant, name):
            raise NotFoundError(
                f"pool '{name}' of tenant '{tenant}' does not exist; `zonda pools list --tenant {tenant}` "
                "shows its pools"
            )
        record(conn, svc, tenant, "pool.delete", name, {})
    svc.waker.wake("pools")
