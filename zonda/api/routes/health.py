"""Liveness of the server's parts."""

from __future__ import annotations

from fastapi import APIRouter

from zonda.api.routes.deps import PublicServicesDep
from zonda.api.schemas import Health
from zonda.services.health import check_health

router = APIRouter(tags=["health"])


@router.get("/health")
def health(svc: PublicServicesDep) -> Health:
    """DB reachability and the newest scheduler heartbeat; 200 even when degraded (the body says)."""
    return check_health(svc)
