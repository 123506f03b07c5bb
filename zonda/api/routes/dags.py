"""DAGs: list, show, pause/unpause; DAG files that failed to import."""

from __future__ import annotations

from fastapi import APIRouter

from zonda.api.errors import ERROR_RESPONSES
from zonda.api.routes.deps import ServicesDep
from zonda.api.routes.params import VersionNumber
from zonda.api.schemas import DagPatch, DagRecord, DagVersionRecord, ImportErrorRecord
from zonda.services import dags

router = APIRouter(prefix="/api/v1", tags=["dags"], responses=ERROR_RESPONSES)


@router.get("/dags")
def list_dags(svc: ServicesDep) -> list[DagRecord]:
    """Every DAG of the caller's tenants, from its latest version."""
    return dags.list_dags(svc)


@router.get("/import-errors")
def list_import_errors(svc: ServicesDep) -> list[ImportErrorRecord]:
    """DAG files that failed to import, with their tracebacks."""
    return dags.list_import_errors(svc)


@router.get("/dags/{dag_id:path}/versions")
def list_versions(dag_id: str, svc: ServicesDep) -> list[DagVersionRecord]:
    """Every version of the DAG, newest first (a run pins the version it started with)."""
    return dags.list_versions(svc, dag_id)


@router.get("/dags/{dag_id:path}/versions/{version}")
def get_version(dag_id: str, version: VersionNumber, svc: ServicesDep) -> DagVersionRecord:
    """One version of the DAG, with the source code it was parsed from."""
    return dags.get_version(svc, dag_id, version)


@router.get("/dags/{dag_id:path}")
def get_dag(dag_id: str, svc: ServicesDep) -> DagRecord:
    """One DAG."""
    return dags.get_dag(svc, dag_id)


@router.patch("/dags/{dag_id:path}")
def patch_dag(dag_id: str, body: DagPatch, svc: ServicesDep) -> DagRecord:
    """Pause or unpause the DAG's schedule."""
    return dags.set_paused(svc, dag_id, body.paused)
