"""Usage: task-, CPU- and GPU-seconds per tenant per UTC day."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter

from zonda.api.errors import ERROR_RESPONSES
from zonda.api.routes.deps import ServicesDep
from zonda.api.schemas.usage import UsageReport
from zonda.services import usage

router = APIRouter(prefix="/api/v1", tags=["usage"], responses=ERROR_RESPONSES)


@router.get("/usage")
def usage_report(
    svc: ServicesDep, tenant_id: str | None = None, since: date | None = None, until: date | None = None
) -> UsageReport:
    """Usage per tenant per UTC day from `since` to `until` (both included; default: the last 30 days)."""
    return usage.usage_report(svc, tenant=tenant_id, since=since, until=until)
