"""Runs and their task instances: create a run with its task rows; read runs back as API records.

Listing is keyset-paginated on (created_at, run_id), newest first, so a page costs one index range
scan however deep the caller pages. The cursor is opaque to callers (base64 of JSON).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, Connection, Row, and_, bindparam, insert, or_, select

from zonda.api.schemas import RunPage, RunRecord, RunSummary, TaskRecord
from zonda.core.ids import tenant_of
from zonda.core.retry import max_tries
from zonda.core.spec import DagSpec
from zonda.core.states import RunState, TaskState
from zonda.db.commands import pending_kinds
from zonda.db.dags import get_version
from zonda.db.schema import runs, task_instances

UNMAPPED = -1

AnyRow: TypeAlias = "Row[*tuple[Any, ...]]"

_TI_COLUMNS = (
    task_instances.c.task_id,
    task_instances.c.map_index,
    task_instances.c.state,
    task_instances.c.try_number,
    task_instances.c.max_tries,
    task_instances.c.queued_at,
    task_instances.c.started_at,
    task_instances.c.ended_at,
    task_instances.c.error,
)


_INSERT_RUN = insert(runs)
_INSERT_INSTANCES = insert(task_instances)
"""Built once, as every trigger inserts a run and its task instances."""


def create_run(
    conn: Connection,
    *,
    run_id: str,
    spec: DagSpec,
    version: int,
    params: dict[str, Any],
    key: str | None,
    trigger: str,
    logical_date: datetime | None,
    now: datetime,
) -> RunRecord:
    """Insert a queued run and one pending task instance per task (mapped tasks start as one
    placeholder); returns the run as `get_run` would read it back, without reading it."""
    run = RunRecord(
        run_id=run_id,
        tenant_id=tenant_of(spec.dag_id),
        dag_id=spec.dag_id,
        dag_version=version,
        state=RunState.QUEUED.value,
        key=key,
        params=params,
        trigger=trigger,
        logical_date=logical_date,
        created_at=now,
        tasks=[
            TaskRecord(
                task_id=task.task_id,
                map_index=UNMAPPED,
                state=TaskState.PENDING.value,
                max_tries=max_tries(task),
                upstream=list(task.upstream),
            )
            for task in spec.tasks
        ],
    )
    conn.execute(
        _INSERT_RUN,
        {
            "run_id": run_id,
            "tenant_id": run.tenant_id,
            "dag_id": spec.dag_id,
            "version": version,
            "state": run.state,
            "key": key,
            "params": params,
            "trigger": trigger,
            "logical_date": logical_date,
            "created_at": now,
        },
    )
    conn.execute(
        _INSERT_INSTANCES,
        [
            {
                "run_id": run_id,
                "task_id": t.task_id,
                "map_index": t.map_index,
                "state": t.state,
                "try_number": t.try_number,
                "max_tries": t.max_tries,
            }
            for t in run.tasks
        ],
    )
    return run


_RUN = select(runs).where(runs.c.run_id == bindparam("run_id"))
_RUN_INSTANCES = select(*_TI_COLUMNS).where(task_instances.c.run_id == bindparam("run_id"))
"""Built once: a run's page, `zonda trigger --wait` and API clients read runs again and again."""


def get_run(conn: Connection, run_id: str) -> RunRecord | None:
    """The run with its task instances in the spec's topological order, or None."""
    row = conn.execute(_RUN, {"run_id": run_id}).first()
    if row is None:
        return None
    spec = _spec(conn, row.dag_id, row.version)
    ti_rows = conn.execute(_RUN_INSTANCES, {"run_id": run_id}).all()
    tasks = [_task_record(r, spec) for r in _in_topological_order(ti_rows, spec)]
    return RunRecord(
        **_summary_fields(row),
        params=row.params or {},
        tasks=tasks,
        pending_commands=pending_kinds(conn, run_id),
    )


def get_task_instance(conn: Connection, run_id: str, task_id: str, map_index: int) -> TaskRecord | None:
    """One task instance of a run (with its upstream task ids), or None."""
    row = conn.execute(
        select(*_TI_COLUMNS).where(
            task_instances.c.run_id == run_id,
            task_instances.c.task_id == task_id,
            task_instances.c.map_index == map_index,
        )
    ).first()
    if row is None:
        return None
    found = dag_of(conn, run_id)
    return _task_record(row, None if found is None else _spec(conn, *found))


def dag_of(conn: Connection, run_id: str) -> tuple[str, int] | None:
    """The DAG and DAG version of a stored run (None if there is no such run)."""
    row = conn.execute(select(runs.c.dag_id, runs.c.version).where(runs.c.run_id == run_id)).one_or_none()
    return None if row is None else (row.dag_id, row.version)


def runs_of_tenants(conn: Connection, run_ids: Sequence[str], tenants: frozenset[str]) -> set[str]:
    """Those of `run_ids` that belong to one of `tenants`."""
    if not run_ids or not tenants:
        return set()
    query = select(runs.c.run_id).where(
        runs.c.run_id.in_(list(run_ids)), runs.c.tenant_id.in_(sorted(tenants))
    )
    return set(conn.execute(query).scalars())


def run_tenant_state(conn: Connection, run_id: str) -> tuple[str, str] | None:
    """(tenant, state) of a run, or None."""
    row = conn.execute(select(runs.c.tenant_id, runs.c.state).where(runs.c.run_id == run_id)).first()
    return (row.tenant_id, row.state) if row else None


def list_runs(
    conn: Connection,
    *,
    tenants: frozenset[str] | None = None,
    dag_id: str | None = None,
    key: str | None = None,
    state: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> RunPage:
    """One page of runs matching every filter given, newest first; raises ValueError for a bad cursor."""
    filters = _filters(dag_id, key, state, created_after, created_before)
    if tenants is not None:
        filters.append(runs.c.tenant_id.in_(sorted(tenants)))
    if cursor:
        filters.append(_after_cursor(*decode_cursor(cursor)))
    query = (
        select(runs).where(*filters).order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit + 1)
    )
    rows = conn.execute(query).all()
    page = [RunSummary(**_summary_fields(r)) for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return RunPage(runs=page, next_cursor=encode_cursor(last.created_at, last.run_id) if last else None)


def run_exists_for_date(conn: Connection, dag_id: str, logical_date: datetime) -> bool:
    """Whether the DAG already has a run for this logical date (schedules and backfills make one each)."""
    query = select(runs.c.run_id).where(runs.c.dag_id == dag_id, runs.c.logical_date == logical_date)
    return conn.execute(query.limit(1)).first() is not None


def encode_cursor(created_at: datetime, run_id: str) -> str:
    """The opaque cursor that continues a listing after this run."""
    raw = json.dumps([created_at.isoformat(), run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, run_id) a cursor points after; ValueError if it is not one of ours."""
    bad = ValueError(f"cursor {cursor!r} is not valid; pass the next_cursor of the previous page")
    try:
        created, run_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        when = datetime.fromisoformat(created)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise bad from exc
    if when.tzinfo is None or not isinstance(run_id, str):
        raise bad
    return when, run_id


def _filters(
    dag_id: str | None,
    key: str | None,
    state: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
) -> list[ColumnElement[bool]]:
    """The WHERE clauses for the filters that were given."""
    filters: list[ColumnElement[bool]] = []
    if dag_id is not None:
        filters.append(runs.c.dag_id == dag_id)
    if key is not None:
        filters.append(runs.c.key == key)
    if state is not None:
        filters.append(runs.c.state == state)
    if created_after is not None:
        filters.append(runs.c.created_at >= created_after)
    if created_before is not None:
        filters.append(runs.c.created_at < created_before)
    return filters


def _after_cursor(created_at: datetime, run_id: str) -> ColumnElement[bool]:
    """Runs that sort after (older than) the cursor's run."""
    return or_(
        runs.c.created_at < created_at,
        and_(runs.c.created_at == created_at, runs.c.run_id < run_id),
    )


def _spec(conn: Connection, dag_id: str, version: int) -> DagSpec | None:
    """The spec a run pinned (None if its version row is gone)."""
    row = get_version(conn, dag_id, version)
    return row.spec if row is not None else None


def _in_topological_order(rows: Sequence[AnyRow], spec: DagSpec | None) -> list[AnyRow]:
    """Task rows sorted by the spec's task order, then map index (unknown tasks last, by id)."""
    order = {t.task_id: i for i, t in enumerate(spec.tasks)} if spec else {}
    return sorted(rows, key=lambda r: (order.get(r.task_id, len(order)), r.task_id, r.map_index))


def _task_record(row: AnyRow, spec: DagSpec | None) -> TaskRecord:
    """A task instance row as the API shows it."""
    return TaskRecord(
        task_id=row.task_id,
        map_index=row.map_index,
        state=row.state,
        try_number=row.try_number,
        max_tries=row.max_tries,
        upstream=_upstream(spec, row.task_id),
        queued_at=row.queued_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        error=row.error,
    )


def _upstream(spec: DagSpec | None, task_id: str) -> list[str]:
    """The task's upstream ids in the pinned spec ([] if the spec or the task is unknown)."""
    if spec is None:
        return []
    try:
        return list(spec.task(task_id).upstream)
    except KeyError:
        return []


def _summary_fields(row: AnyRow) -> dict[str, Any]:
    """The RunSummary fields of a runs row."""
    return {
        "run_id": row.run_id,
        "tenant_id": row.tenant_id,
        "dag_id": row.dag_id,
        "dag_version": row.version,
        "state": row.state,
        "key": row.key,
        "trigger": row.trigger,
        "logical_date": row.logical_date,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "ended_at": row.ended_at,
    }
