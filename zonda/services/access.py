"""Tenant scoping, in one place: every service function that touches a tenant's objects asks here.

`require` turns the pure decision (`core.permissions.decide`) into the errors the API maps:
another tenant's object is `NotFoundError` (404, so it cannot be discovered), a role that is too
low is `PermissionDeniedError` (403). `visible` gives list queries their tenant filter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zonda.core.permissions import Action, Decision, decide
from zonda.db.engine import read_txn
from zonda.db.tenants import get_tenant
from zonda.errors import NotFoundError, PermissionDeniedError

if TYPE_CHECKING:
    from zonda.api.schemas.identity import TenantRecord
    from zonda.services.context import Services


def require(svc: Services, tenant: str, action: Action, what: str) -> None:
    """Raise unless the caller may perform `action` on `what`, an object of `tenant`."""
    decision = decide(svc.principal, tenant, action)
    if decision is Decision.HIDDEN:
        raise NotFoundError(f"{what} not found")
    if decision is Decision.FORBIDDEN:
        role = svc.principal.role_in(tenant)
        raise PermissionDeniedError(
            f"your role in tenant '{tenant}' is {role}, which may not {action.value} {what}; "
            "ask one of the tenant's admins for a higher role"
        )


def require_tenant(svc: Services, tenant: str, action: Action, what: str) -> TenantRecord:
    """`require`, then the tenant; NotFoundError if it does not exist (a superuser may name any tenant)."""
    require(svc, tenant, action, what)
    with read_txn(svc.engine) as conn:
        found = get_tenant(conn, tenant)
    if found is None:
        raise NotFoundError(f"tenant '{tenant}' not found; `zonda tenants list` lists them")
    return found


def visible(svc: Services) -> frozenset[str] | None:
    """The tenants the caller may read; None means all (superusers)."""
    return svc.principal.visible_tenants()


def require_superuser(svc: Services, what: str) -> None:
    """Raise PermissionDeniedError unless the caller is a platform superuser."""
    if not svc.principal.superuser:
        raise PermissionDeniedError(f"only a platform superuser may {what}")
