"""Runs: trigger, read, list, clear and backfill. Writes commit first, then wake the scheduler."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from zonda.api.schemas import (
    BackfillRequest,
    BackfillResult,
    ClearRequest,
    CommandAccepted,
    MarkRequest,
    RunPage,
    RunRecord,
    TriggerRequest,
)
from zonda.core.ids import new_run_id
from zonda.core.params import validate_params
from zonda.core.permissions import Action
from zonda.core.schedule import fires_between, validate_timezone
from zonda.core.spec import DagSpec
from zonda.core.states import RunState, RunTrigger
from zonda.db import runs as db
from zonda.db.commands import add_command
from zonda.db.engine import read_txn, write_txn
from zonda.errors import ConflictError, NotFoundError, ParamsError, ScheduleError
from zonda.services.access import require, visible
from zonda.services.audit import record
from zonda.services.dags import check_dag, latest_version_of, require_dag, require_latest_version
from zonda.services.times import as_utc

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from zonda.db.dags import VersionRow
    from zonda.services.context import Services


def trigger_run(svc: Services, dag_id: str, request: TriggerRequest) -> RunRecord:
    """Start a run of the DAG's latest version now (paused DAGs too); ParamsError names each bad param."""
    tenant = check_dag(svc, dag_id, Action.OPERATE)
    with read_txn(svc.engine) as conn:
        dag = require_dag(conn, dag_id)
        if not dag.active:
            raise ConflictError(f"DAG '{dag_id}' is no longer in the DAG folder; restore its file to run it")
        version = latest_version_of(conn, dag)
    params = validate_params(version.spec.params_schema, request.params)
    with write_txn(svc.engine) as conn:
        created = _create(conn, svc, version, params, request.key, RunTrigger.API, None)
        record(conn, svc, tenant, "run.trigger", created.run_id, {"dag_id": dag_id, "key": request.key})
    svc.waker.wake("runs")
    return created


def get_run(svc: Services, run_id: str) -> RunRecord:
    """A run with its task instances; NotFoundError if there is no such run (or the caller may not see it)."""
    with read_txn(svc.engine) as conn:
        return require_run(svc, conn, run_id, Action.READ)


def list_runs(
    svc: Services,
    *,
    dag_id: str | None = None,
    key: str | None = None,
    state: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> RunPage:
    """One page of runs, newest first (naive times are UTC); ParamsError for a cursor we did not issue."""
    _check_cursor(cursor)
    with read_txn(svc.engine) as conn:
        return db.list_runs(
            conn,
            tenants=visible(svc),
            dag_id=dag_id,
            key=key,
            state=state,
            created_after=as_utc(created_after, "created_after"),
            created_before=as_utc(created_before, "created_before"),
            limit=max(1, min(limit, 500)),
            cursor=cursor,
        )


def clear_run(svc: Services, run_id: str, request: ClearRequest) -> CommandAccepted:
    """Ask the run's scheduler to re-run failed tasks, or one task (and downstream); 409 while queued."""
    with write_txn(svc.engine) as conn:
        run = require_run(svc, conn, run_id, Action.OPERATE)
        _check_clearable(run, request)
        payload: dict[str, Any] = {"task_id": request.task_id, "downstream": request.downstream}
        command_id = add_command(conn, "clear", run_id, payload, svc.now())
        record(conn, svc, run.tenant_id, "run.clear", run_id, payload)
    svc.waker.wake("commands")
    return CommandAccepted(command_id=command_id, run_id=run_id)


def cancel_run(svc: Services, run_id: str) -> CommandAccepted:
    """Ask the run's scheduler to stop it: attempts in flight are killed, nothing else starts; 409 once ended."""
    with write_txn(svc.engine) as conn:
        run = require_run(svc, conn, run_id, Action.OPERATE)
        if RunState(run.state).finished:
            raise ConflictError(f"run {run_id} already ended ({run.state}); there is nothing to cancel")
        reason = f"cancelled by {svc.principal.name}"
        command_id = add_command(conn, "cancel", run_id, {"reason": reason}, svc.now())
        record(conn, svc, run.tenant_id, "run.cancel", run_id, {})
    svc.waker.wake("commands")
    return CommandAccepted(command_id=command_id, run_id=run_id)


def mark_task(svc: Services, run_id: str, task_id: str, request: MarkRequest) -> CommandAccepted:
    """Ask the run's scheduler to end a task as success or failed (killing it if it runs)."""
    with write_txn(svc.engine) as conn:
        run = require_run(svc, conn, run_id, Action.OPERATE)
        _check_markable(run, task_id, request)
        note = f"marked {request.state} by {svc.principal.name}"
        payload = {"task_id": task_id, "map_index": request.map_index, "state": request.state, "note": note}
        command_id = add_command(conn, "mark", run_id, payload, svc.now())
        record(conn, svc, run.tenant_id, "task.mark", f"{run_id}/{task_id}", payload)
    svc.waker.wake("commands")
    return CommandAccepted(command_id=command_id, run_id=run_id)


def backfill(svc: Services, dag_id: str, request: BackfillRequest) -> BackfillResult:
    """One run per scheduled time in [start, end] with no run yet; naive times are in the DAG's timezone."""
    tenant = check_dag(svc, dag_id, Action.OPERATE)
    with read_txn(svc.engine) as conn:
        version = require_latest_version(conn, dag_id)
    spec = version.spec
    fires = _fire_times(spec, request.start, request.end)
    params = validate_params(spec.params_schema, {})
    with write_txn(svc.engine) as conn:
        result = _create_missing(conn, svc, version, params, fires)
        details = {
            "start": request.start.isoformat(),
            "end": request.end.isoformat(),
            "runs": len(result.run_ids),
        }
        record(conn, svc, tenant, "dag.backfill", dag_id, details)
    if result.run_ids:
        svc.waker.wake("runs")
    return result


def _create(
    conn: Connection,
    svc: Services,
    version: VersionRow,
    params: dict[str, Any],
    key: str | None,
    trigger: RunTrigger,
    logical_date: datetime | None,
) -> RunRecord:
    """Insert a run of `version`; returns it as created."""
    return db.create_run(
        conn,
        run_id=new_run_id(),
        spec=version.spec,
        version=version.version,
        params=params,
        key=key,
        trigger=trigger.value,
        logical_date=logical_date,
        now=svc.now(),
    )


def _create_missing(
    conn: Connection, svc: Services, version: VersionRow, params: dict[str, Any], fires: list[datetime]
) -> BackfillResult:
    """Create backfill runs for the fire times that have none (a concurrent scheduler's run wins)."""
    run_ids: list[str] = []
    for when in fires:
        if db.run_exists_for_date(conn, version.dag_id, when):
            continue
        try:
            with conn.begin_nested():
                run_ids.append(_create(conn, svc, version, params, None, RunTrigger.BACKFILL, when).run_id)
        except IntegrityError:
            continue
    return BackfillResult(run_ids=run_ids, skipped_existing=len(fires) - len(run_ids))


def _fire_times(spec: DagSpec, start: datetime, end: datetime) -> list[datetime]:
    """The DAG's scheduled times in [start, end]; ScheduleError if it has no schedule."""
    if spec.schedule is None:
        raise ScheduleError(
            f"DAG '{spec.dag_id}' has no schedule, so there is nothing to backfill; "
            "give it `schedule=` or trigger runs instead"
        )
    zone = validate_timezone(spec.timezone)
    start, end = (t if t.tzinfo else t.replace(tzinfo=zone) for t in (start, end))
    anchor = datetime.fromisoformat(spec.start_date) if spec.start_date else None
    return fires_between(spec.schedule, spec.timezone, start, end, anchor=anchor)


def _check_clearable(run: RunRecord, request: ClearRequest) -> None:
    """ConflictError for a run not started yet; NotFoundError for a task the run does not have."""
    if run.state == RunState.QUEUED:
        raise ConflictError(
            f"run {run.run_id} is still queued: nothing has run, so there is nothing to clear"
        )
    if request.task_id is not None:
        _require_task(run, request.task_id)


def _require_task(run: RunRecord, task_id: str) -> None:
    task_ids = {t.task_id for t in run.tasks}
    if task_id not in task_ids:
        raise NotFoundError(
            f"task '{task_id}' is not in run {run.run_id}; its tasks: {', '.join(sorted(task_ids))}"
        )


def _check_markable(run: RunRecord, task_id: str, request: MarkRequest) -> None:
    """ConflictError for a queued run or a task already in that state; NotFoundError for a missing one."""
    if run.state == RunState.QUEUED:
        raise ConflictError(f"run {run.run_id} is still queued: its tasks have not been decided yet")
    _require_task(run, task_id)
    targets = [t for t in run.tasks if t.task_id == task_id and request.map_index in (None, t.map_index)]
    if not targets:
        indexes = sorted(t.map_index for t in run.tasks if t.task_id == task_id)
        raise NotFoundError(
            f"task '{task_id}' of run {run.run_id} has no map index {request.map_index}; "
            f"it has {', '.join(map(str, indexes))}"
        )
    if all(t.state == request.state for t in targets):
        raise ConflictError(f"task '{task_id}' of run {run.run_id} is already {request.state}")


def _check_cursor(cursor: str | None) -> None:
    """ParamsError naming `cursor` if it is not a next_cursor this API handed out."""
    if cursor:
        try:
            db.decode_cursor(cursor)
        except ValueError as exc:
            raise ParamsError(str(exc), [{"param": "cursor", "message": str(exc)}]) from exc


def require_run(svc: Services, conn: Connection, run_id: str, action: Action) -> RunRecord:
    """The run, if the caller may perform `action` on it; NotFoundError otherwise (also for other tenants')."""
    found = _require_run(conn, run_id)
    require(svc, found.tenant_id, action, f"run '{run_id}'")
    return found


def _require_run(conn: Connection, run_id: str) -> RunRecord:
    """The run, or NotFoundError."""
    found = db.get_run(conn, run_id)
    if found is None:
        raise NotFoundError(f"run '{run_id}' not found; `zonda runs list` or GET /api/v1/runs lists runs")
    return found
