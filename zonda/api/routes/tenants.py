"""Tenants: the teams that share this Zonda."""

from __future__ import annotations

from fastapi import APIRouter

from zonda.api.errors import ERROR_RESPONSES
from zonda.api.routes.deps import ServicesDep
from zonda.api.schemas.identity import TenantCreate, TenantPatch, TenantRecord
from zonda.services import tenants

router = APIRouter(prefix="/api/v1", tags=["tenants"], responses=ERROR_RESPONSES)


@router.post("/tenants", status_code=201)
def create_tenant(body: TenantCreate, svc: ServicesDep) -> TenantRecord:
    """Create a tenant with its DAG folders and quotas (superusers)."""
    return tenants.create_tenant(svc, body)


@router.get("/tenants")
def list_tenants(svc: ServicesDep) -> list[TenantRecord]:
    """The tenants you belong to (superusers: all)."""
    return tenants.list_tenants(svc)


@router.get("/tenants/{tenant_id}")
def get_tenant(tenant_id: str, svc: ServicesDep) -> TenantRecord:
    """One tenant."""
    return tenants.get_tenant(svc, tenant_id)


@router.patch("/tenants/{tenant_id}")
def update_tenant(tenant_id: str, body: TenantPatch, svc: ServicesDep) -> TenantRecord:
    """Change a tenant's DAG folders or quotas (superusers)."""
    return tenants.update_tenant(svc, tenant_id, body)


@router.delete("/tenants/{tenant_id}", status_code=204)
def delete_tenant(tenant_id: str, svc: ServicesDep) -> None:
    """Delete a tenant that has no DAGs or runs left (superusers)."""
    tenants.delete_tenant(svc, tenant_id)
