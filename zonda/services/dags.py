"""DAGs as the API shows them: their latest version's shape, pause state, next scheduled run, versions.

Every DAG belongs to the tenant its id names (`team-a/etl`); callers see only their tenants' DAGs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zonda.api.schemas import DagRecord, DagVersionRecord, ImportErrorRecord
from zonda.core.ids import split_dag_id
from zonda.core.permissions import Action
from zonda.db import dags as db
from zonda.db.engine import read_txn, write_txn
from zonda.errors import NotFoundError
from zonda.services.access import require, visible
from zonda.services.audit import record

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from zonda.db.dags import DagRow, VersionRow
    from zonda.services.context import Services


def list_dags(svc: Services) -> list[DagRecord]:
    """Every active DAG the caller can see, with its params schema and task ids from its latest version."""
    with read_txn(svc.engine) as conn:
        return [_record(conn, row) for row in db.list_dags(conn, tenants=visible(svc))]


def get_dag(svc: Services, dag_id: str) -> DagRecord:
    """One DAG (active or not); NotFoundError if Zonda never saw it or the caller may not see it."""
    check_dag(svc, dag_id, Action.READ)
    with read_txn(svc.engine) as conn:
        return _record(conn, require_dag(conn, dag_id))


def set_paused(svc: Services, dag_id: str, paused: bool) -> DagRecord:
    """Pause or unpause a DAG's schedule (manual triggers work either way); wakes the scheduler."""
    tenant = check_dag(svc, dag_id, Action.OPERATE)
    with write_txn(svc.engine) as conn:
        if not db.set_paused(conn, dag_id, paused):
            raise NotFoundError(_missing(dag_id))
        record(conn, svc, tenant, "dag.pause" if paused else "dag.unpause", dag_id, {})
        found = _record(conn, require_dag(conn, dag_id))
    svc.waker.wake("dags")
    return found


def list_versions(svc: Services, dag_id: str) -> list[DagVersionRecord]:
    """Every version of a DAG, newest first, without their source."""
    check_dag(svc, dag_id, Action.READ)
    with read_txn(svc.engine) as conn:
        require_dag(conn, dag_id)
        return [_version_record(v, with_source=False) for v in db.list_versions(conn, dag_id)]


def get_version(svc: Services, dag_id: str, version: int) -> DagVersionRecord:
    """One version of a DAG with the exact source it was parsed from."""
    check_dag(svc, dag_id, Action.READ)
    with read_txn(svc.engine) as conn:
        found = db.get_version(conn, dag_id, version)
    if found is None:
        raise NotFoundError(
            f"DAG '{dag_id}' has no version {version}; GET /api/v1/dags/{dag_id}/versions lists them"
        )
    return _version_record(found, with_source=True)


def list_import_errors(svc: Services) -> list[ImportErrorRecord]:
    """DAG files of the caller's tenants that failed to import, with their tracebacks."""
    with read_txn(svc.engine) as conn:
        rows = db.list_import_errors(conn, visible(svc))
    return [
        ImportErrorRecord(tenant_id=r.tenant_id, fileloc=r.fileloc, error=r.error, recorded_at=r.recorded_at)
        for r in rows
    ]


def check_dag(svc: Services, dag_id: str, action: Action) -> str:
    """The tenant of `dag_id`, if the caller may perform `action` on it; NotFoundError otherwise."""
    try:
        tenant, _ = split_dag_id(dag_id)
    except ValueError as exc:
        raise NotFoundError(f"DAG '{dag_id}' not found: {exc}") from None
    require(svc, tenant, action, f"DAG '{dag_id}'")
    return tenant


def require_dag(conn: Connection, dag_id: str) -> DagRow:
    """The DAG's row, or NotFoundError saying where to look."""
    row = db.get_dag(conn, dag_id)
    if row is None:
        raise NotFoundError(_missing(dag_id))
    return row


def require_latest_version(conn: Connection, dag_id: str) -> VersionRow:
    """The DAG's latest version (what new runs pin), or NotFoundError."""
    return latest_version_of(conn, require_dag(conn, dag_id))


def latest_version_of(conn: Connection, row: DagRow) -> VersionRow:
    """The latest version of a DAG whose row the caller has read, or NotFoundError."""
    version = db.get_version(conn, row.dag_id, row.latest_version)
    if version is None:
        raise NotFoundError(
            f"DAG '{row.dag_id}' has no stored version {row.latest_version}; re-parse its file"
        )
    return version


def _record(conn: Connection, row: DagRow) -> DagRecord:
    """A DAG row plus its latest version's params schema and task ids."""
    version = db.get_version(conn, row.dag_id, row.latest_version)
    spec = version.spec if version is not None else None
    return DagRecord(
        dag_id=row.dag_id,
        tenant_id=row.tenant_id,
        fileloc=row.fileloc,
        version=row.latest_version,
        paused=row.paused,
        active=row.active,
        owner=row.owner,
        description=row.description,
        tags=list(row.tags),
        schedule=row.schedule,
        timezone=row.timezone,
        next_run_at=row.next_fire_at,
        params_schema=spec.params_schema if spec else {},
        tasks=[t.task_id for t in spec.tasks] if spec else [],
    )


def _version_record(version: VersionRow, *, with_source: bool) -> DagVersionRecord:
    return DagVersionRecord(
        dag_id=version.dag_id,
        version=version.version,
        hash=version.hash,
        fileloc=version.fileloc,
        created_at=version.created_at,
        tasks=[t.task_id for t in version.spec.tasks],
        source=version.source if with_source else None,
    )


def _missing(dag_id: str) -> str:
    """The not-found message for a DAG id."""
    return (
        f"DAG '{dag_id}' not found: no DAG file defines it, or its file failed to import "
        "(see GET /api/v1/import-errors or `zonda dags errors`)"
    )
