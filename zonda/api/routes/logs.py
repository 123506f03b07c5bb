"""Task logs as plain text."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from zonda.api.errors import ERROR_RESPONSES
from zonda.api.routes.deps import ServicesDep
from zonda.api.routes.params import MapIndex, TryNumber
from zonda.services import logs

router = APIRouter(prefix="/api/v1", tags=["logs"], responses=ERROR_RESPONSES)


@router.get("/runs/{run_id}/tasks/{task_id}/logs", response_class=PlainTextResponse)
def task_log(
    run_id: str,
    task_id: str,
    svc: ServicesDep,
    map_index: MapIndex = -1,
    try_number: TryNumber = None,
) -> str:
    """One attempt's log (the latest attempt unless `try_number` is given)."""
    return logs.read_log(svc, run_id, task_id, map_index, try_number)
