"""Workers: the Celery workers the schedulers see heartbeating."""

from __future__ import annotations

from fastapi import APIRouter

from zonda.api.errors import ERROR_RESPONSES
from zonda.api.routes.deps import ServicesDep
from zonda.api.schemas import WorkerRecord
from zonda.services import workers

router = APIRouter(prefix="/api/v1", tags=["workers"], responses=ERROR_RESPONSES)


@router.get("/workers")
def list_workers(svc: ServicesDep) -> list[WorkerRecord]:
    """Every worker recorded from heartbeats: queues, concurrency, running attempts, liveness."""
    return workers.list_workers(svc)
