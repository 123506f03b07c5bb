"""The audit log: every mutating action, who did it, when and from where."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from zonda.api.errors import ERROR_RESPONSES
from zonda.api.routes.deps import ServicesDep
from zonda.api.schemas.audit import AuditPage
from zonda.services import audit

router = APIRouter(prefix="/api/v1", tags=["audit"], responses=ERROR_RESPONSES)


@router.get("/audit")
def list_audit(
    svc: ServicesDep,
    tenant_id: str | None = None,
    actor: str | None = None,
    action: Annotated[
        str | None, Query(description="An action (`secret.set`) or its noun (`secret`).")
    ] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> AuditPage:
    """Entries newest first (tenant admins: their tenants; superusers: all); follow `next_cursor` for older ones."""
    return audit.list_audit(
        svc, tenant=tenant_id, actor=actor, action=action, since=since, limit=limit, cursor=cursor
    )
