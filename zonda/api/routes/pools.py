"""Pools: slot limits shared by the tasks that name them (`@task(pool=...)`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from zonda.api.errors import ERROR_RESPONSES
from zonda.api.routes.deps import ServicesDep
from zonda.api.schemas import PoolRecord, PoolSpec
from zonda.services import pools

router = APIRouter(prefix="/api/v1", tags=["pools"], responses=ERROR_RESPONSES)


@router.get("/pools")
def list_pools(svc: ServicesDep) -> list[PoolRecord]:
    """Every pool and its slots."""
    return pools.list_pools(svc)


@router.put("/pools/{name}")
def set_pool(name: str, body: PoolSpec, svc: ServicesDep) -> PoolRecord:
    """Create a pool or change its slots."""
    return pools.set_pool(svc, name, body)


@router.delete("/pools/{name}", status_code=204)
def delete_pool(name: str, svc: ServicesDep) -> Response:
    """Delete a pool; tasks that name it then fail with a message until it exists again."""
    pools.delete_pool(svc, name)
    return Response(status_code=204)
