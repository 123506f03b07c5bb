"""Pools of a tenant: slot limits shared by the tenant's tasks that name them (`@task(pool=...)`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from zonda.api.errors import ERROR_RESPONSES
from zonda.api.routes.deps import ServicesDep
from zonda.api.schemas import PoolRecord, PoolSpec
from zonda.services import pools

router = APIRouter(prefix="/api/v1/tenants/{tenant_id}", tags=["pools"], responses=ERROR_RESPONSES)


@router.get("/pools")
def list_pools(tenant_id: str, svc: ServicesDep) -> list[PoolRecord]:
    """The tenant's pools and their slots."""
    return pools.list_pools(svc, tenant_id)


@router.put("/pools/{name}")
def set_pool(tenant_id: str, name: str, body: PoolSpec, svc: ServicesDep) -> PoolRecord:
    """Create a pool of the tenant or change its slots (tenant admins)."""
    return pools.set_pool(svc, tenant_id, name, body)


@router.delete("/pools/{name}", status_code=204)
def delete_pool(tenant_id: str, name: str, svc: ServicesDep) -> Response:
    """Delete a pool; the tenant's tasks that name it then fail with a message until it exists again."""
    pools.delete_pool(svc, tenant_id, name)
    return Response(status_code=204)
