"""What the scheduler reads to enforce tenant quotas, and the lock that keeps a bounded tenant on one
scheduler (ADR 0009: a tenant with a quota or a pool is served by one scheduler at a time)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, select

from zonda.core.quotas import Quota
from zonda.db.leases import held_by_others
from zonda.db.schema import tenants


def quotas(conn: Connection) -> dict[str, Quota]:
    """The quota of every tenant that has one."""
    c = tenants.c
    query = select(c.tenant_id, c.max_running_tasks, c.max_active_runs).where(
        (c.max_running_tasks.is_not(None)) | (c.max_active_runs.is_not(None))
    )
    return {r.tenant_id: Quota(r.max_running_tasks, r.max_active_runs) for r in conn.execute(query)}


def held_elsewhere(
    conn: Connection, tenant_ids: Collection[str], owner: str, skip_locked: bool = False
) -> set[str]:
    """Of `tenant_ids`, those with an active run that a scheduler other than `owner` holds.

    The tenants' rows are locked first (in one order, so two schedulers cannot deadlock), until the
    transaction ends: a scheduler that then claims one of their runs is the only one doing so.
    Expired leases count too: their runs go to one scheduler, which then serves the tenant.
    With `skip_locked` (for a caller that may already hold run rows), a tenant whose row another
    transaction holds counts as held elsewhere instead of being waited for.
    """
    if not tenant_ids:
        return set()
    ids = sorted(tenant_ids)
    lock = select(tenants.c.tenant_id).where(tenants.c.tenant_id.in_(ids)).order_by(tenants.c.tenant_id)
    locked = {r.tenant_id for r in conn.execute(lock.with_for_update(skip_locked=skip_locked))}
    busy = set(ids) - locked if skip_locked else set()
    return busy | held_by_others(conn, "tenant_id", ids, owner)
