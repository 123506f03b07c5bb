"""Task instances: details with attempts and output, and the output's bytes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from zonda.api.errors import ERROR_RESPONSES
from zonda.api.routes.deps import ServicesDep
from zonda.api.routes.params import MapIndex
from zonda.api.schemas import CommandAccepted, MarkRequest
from zonda.api.schemas.tasks import TaskInstanceRecord
from zonda.services import runs, task_details

router = APIRouter(prefix="/api/v1", tags=["tasks"], responses=ERROR_RESPONSES)


@router.get("/runs/{run_id}/tasks/{task_id}")
def get_task_instance(
    run_id: str, task_id: str, svc: ServicesDep, map_index: MapIndex = -1
) -> TaskInstanceRecord:
    """A task instance: state, attempts, and its output's metadata (with a preview of JSON values)."""
    return task_details.get_task_instance(svc, run_id, task_id, map_index)


@router.get(
    "/runs/{run_id}/tasks/{task_id}/output",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The serialized value"}},
)
def download_output(run_id: str, task_id: str, svc: ServicesDep, map_index: MapIndex = -1) -> Response:
    """The task's stored return value, as serialized (header `X-Zonda-Serializer` names the format)."""
    found = task_details.read_output(svc, run_id, task_id, map_index)
    return Response(
        found.data, media_type="application/octet-stream", headers={"X-Zonda-Serializer": found.serializer}
    )


@router.post("/runs/{run_id}/tasks/{task_id}/mark", status_code=202)
def mark_task(run_id: str, task_id: str, body: MarkRequest, svc: ServicesDep) -> CommandAccepted:
    """End a task by hand as success or failed; a running attempt is killed (operators and admins)."""
    return runs.mark_task(svc, run_id, task_id, body)
