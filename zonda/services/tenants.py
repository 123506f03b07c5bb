"""Tenants: created, changed and removed by platform superusers; seen by their members."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from zonda.api.schemas.identity import TenantCreate, TenantPatch, TenantRecord
from zonda.core.permissions import Action
from zonda.db import tenants as db
from zonda.db.engine import read_txn, write_txn
from zonda.errors import ConflictError
from zonda.services.access import require_superuser, require_tenant, visible
from zonda.services.audit import record

if TYPE_CHECKING:
    from zonda.services.context import Services


def create_tenant(svc: Services, spec: TenantCreate) -> TenantRecord:
    require_superuser(svc, "create tenants")
    fields = spec.model_dump(exclude={"tenant_id"})
    try:
        with write_txn(svc.engine) as conn:
            db.create_tenant(conn, spec.tenant_id, fields, svc.now())
            record(conn, svc, spec.tenant_id, "tenant.create", spec.tenant_id, fields)
    except IntegrityError:
        raise ConflictError(f"tenant '{spec.tenant_id}' already exists") from None
    svc.waker.wake("tenants")
    return get_tenant(svc, spec.tenant_id)


def list_tenants(svc: Services) -> list[TenantRecord]:
    """The tenants the caller belongs to (every tenant for superusers)."""
    with read_txn(svc.engine) as conn:
        return db.list_tenants(conn, visible(svc))


def get_tenant(svc: Services, tenant: str) -> TenantRecord:
    return require_tenant(svc, tenant, Action.READ, f"tenant '{tenant}'")


def update_tenant(svc: Services, tenant: str, patch: TenantPatch) -> TenantRecord:
    """Change a tenant's folders or quotas (superusers: a tenant may not raise its own quota)."""
    get_tenant(svc, tenant)
    require_superuser(svc, "change a tenant's DAG folders or quotas")
    fields = patch.model_dump(exclude_unset=True)
    with write_txn(svc.engine) as conn:
        db.update_tenant(conn, tenant, fields)
        record(conn, svc, tenant, "tenant.update", tenant, fields)
    svc.waker.wake("tenants")
    return get_tenant(svc, tenant)


def delete_tenant(svc: Services, tenant: str) -> None:
    """Remove a tenant with its memberships, pools and secrets; refused while it still has DAGs or runs."""
    get_tenant(svc, tenant)
    require_superuser(svc, "delete tenants")
    with write_txn(svc.engine) as conn:
        if db.owns_anything(conn, tenant):
            raise ConflictError(
                f"tenant '{tenant}' still has DAGs or runs; empty its DAG folders and wait for its runs "
                "to end, or keep the tenant"
            )
        db.delete_tenant(conn, tenant)
        record(conn, svc, tenant, "tenant.delete", tenant, {})
    svc.waker.wake("tenants")
