"""Runs: trigger, list, show, clear, backfill."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from zonda.api.errors import ERROR_RESPONSES
from zonda.api.routes.deps import ServicesDep
from zonda.api.schemas import (
    BackfillRequest,
    BackfillResult,
    ClearRequest,
    CommandAccepted,
    RunPage,
    RunRecord,
    TriggerRequest,
)
from zonda.services import runs

router = APIRouter(prefix="/api/v1", tags=["runs"], responses=ERROR_RESPONSES)


@router.post("/dags/{dag_id:path}/runs", status_code=201)
def trigger_run(dag_id: str, body: TriggerRequest, svc: ServicesDep) -> RunRecord:
    """Start a run of the DAG's latest version now."""
    return runs.trigger_run(svc, dag_id, body)


@router.post("/dags/{dag_id:path}/backfill", status_code=201)
def backfill(dag_id: str, body: BackfillRequest, svc: ServicesDep) -> BackfillResult:
    """Create one run per scheduled time in [start, end] that has no run yet."""
    return runs.backfill(svc, dag_id, body)


@router.get("/runs")
def list_runs(
    svc: ServicesDep,
    dag_id: str | None = None,
    key: str | None = None,
    state: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> RunPage:
    """Runs matching every filter given, newest first; follow `next_cursor` for older ones."""
    return runs.list_runs(
        svc,
        dag_id=dag_id,
        key=key,
        state=state,
        created_after=created_after,
        created_before=created_before,
        limit=limit,
        cursor=cursor,
    )


@router.get("/runs/{run_id}")
def get_run(run_id: str, svc: ServicesDep) -> RunRecord:
    """A run and its task instances."""
    return runs.get_run(svc, run_id)


@router.post("/runs/{run_id}/clear", status_code=202)
def clear_run(run_id: str, body: ClearRequest, svc: ServicesDep) -> CommandAccepted:
    """Re-run the run's failed tasks, or one task (and its downstream tasks)."""
    return runs.clear_run(svc, run_id, body)


@router.post("/runs/{run_id}/cancel", status_code=202)
def cancel_run(run_id: str, svc: ServicesDep) -> CommandAccepted:
    """Stop a run: its running attempts are killed and fail, tasks not started are skipped."""
    return runs.cancel_run(svc, run_id)
