"""DAGs: list, show, pause/unpause; DAG files that failed to import."""

from __future__ import annotations

from fastapi import APIRouter

from zonda.api.errors import ERROR_RESPONSES
from zonda.api.routes.deps import ServicesDep
from zonda.api.schemas import DagPatch, DagRecord, ImportErrorRecord
from zonda.services import dags

router = APIRouter(prefix="/api/v1", tags=["dags"], responses=ERROR_RESPONSES)


@router.get("/dags")
def list_dags(svc: ServicesDep) -> list[DagRecord]:
    """Every DAG in the DAG folder, from its latest version."""
    return dags.list_dags(svc)


@router.get("/import-errors")
def list_import_errors(svc: ServicesDep) -> list[ImportErrorRecord]:
    """DAG files that failed to import, with their tracebacks."""
    return dags.list_import_errors(svc)


@router.get("/dags/{dag_id:path}")
def get_dag(dag_id: str, svc: ServicesDep) -> DagRecord:
    """One DAG."""
    return dags.get_dag(svc, dag_id)


@router.patch("/dags/{dag_id:path}")
def patch_dag(dag_id: str, body: DagPatch, svc: ServicesDep) -> DagRecord:
    """Pause or unpause the DAG's schedule."""
    return dags.set_paused(svc, dag_id, body.paused)
