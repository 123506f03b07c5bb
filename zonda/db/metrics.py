"""Rows behind the latency dashboard and the system page: runs of a window with their task times, loads.

A window's runs are those that overlap it (not ended before its start, created before its end):
found by the index on `runs.ended_at` (the creation bound is checked here, so that no planner
prefers `created_at`, which would scan all history before the window's end), then their task
instances and earlier attempts by primary key. Times are read as POSIX seconds computed by the
database (`EpochSeconds`): building aware datetimes in Python costs more than the whole computation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Float, Select, and_, case, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from zonda.core.metrics import Attempt, Instance
from zonda.core.states import TASK_FINISHED, RunState, TaskState
from zonda.db.schema import runs, task_attempts, task_instances

CHUNK = 2000
"""Run ids per `IN (...)` query: few round trips, well under SQLite's limit of 32,766 parameters."""

ACTIVE_RUNS = (RunState.QUEUED.value, RunState.RUNNING.value)
WAITING_TASKS = (TaskState.SCHEDULED.value, TaskState.QUEUED.value, TaskState.RUNNING.value)
_FINISHED = frozenset(s.value for s in TASK_FINISHED)


class EpochSeconds(FunctionElement[float]):
    """A UTCDateTime column as POSIX seconds with its microseconds, computed by the database.

    SQLite keeps times as text 'YYYY-MM-DD HH:MM:SS.ffffff' and its date functions round to
    milliseconds (strftime('%s') of '...:59.9996' is the next second), so the whole seconds come
    from julianday() of the text without its fraction, rounded, and the fraction from the text.
    """

    type = Float()
    inherit_cache = True


@compiles(EpochSeconds, "sqlite")
def _epoch_sqlite(element: EpochSeconds, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    whole = f"CAST(round((julianday(substr({column}, 1, 19)) - 2440587.5) * 86400.0) AS INTEGER)"
    return f"({whole} + CAST(substr({column}, 20) AS REAL))"


@compiles(EpochSeconds, "postgresql")
def _epoch_postgresql(element: EpochSeconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS DOUBLE PRECISION)"


def _epoch(column: Any, name: str) -> ColumnElement[float]:
    return EpochSeconds(column).label(name)


@dataclass(frozen=True, slots=True)
class WindowRun:
    """A run overlapping the window: ids, the version it pinned, its state and times (POSIX seconds)."""

    run_id: str
    tenant_id: str
    dag_id: str
    version: int
    state: str
    created: float
    started: float | None
    ended: float | None


def window_runs(
    conn: Connection,
    *,
    since: datetime,
    until: datetime,
    tenants: frozenset[str] | None,
    dag_id: str | None = None,
) -> list[WindowRun]:
    """Runs created before `until` that had not ended by `since`, of `tenants` (None: all) and `dag_id`."""
    query = select(
        runs.c.run_id,
        runs.c.tenant_id,
        runs.c.dag_id,
        runs.c.version,
        runs.c.state,
        _epoch(runs.c.created_at, "created"),
        _epoch(runs.c.started_at, "started"),
        _epoch(runs.c.ended_at, "ended"),
    ).where(or_(runs.c.ended_at >= since, runs.c.ended_at.is_(None)))
    if tenants is not None:
        query = query.where(runs.c.tenant_id.in_(sorted(tenants)))
    if dag_id is not None:
        query = query.where(runs.c.dag_id == dag_id)
    end = until.timestamp()
    found = []
    for run_id, tenant_id, dag, version, state, created, started, ended in conn.execute(query).all():
        if created < end:
            found.append(WindowRun(run_id, tenant_id, dag, version, state, created, started, ended))
    return found


@dataclass(slots=True)
class RunRows:
    """A run's task instances (`task_id, map_index, queued, started, ended`: the latest attempt's
    times) and its earlier attempts, the shapes `core.metrics` reads."""

    instances: list[Instance] = field(default_factory=list)
    earlier: dict[tuple[str, int], list[Attempt]] = field(default_factory=dict)


def run_rows(conn: Connection, run_ids: Sequence[str]) -> dict[str, RunRows]:
    """The task instances and earlier attempts of each of `run_ids`. The instance rows hold the latest
    attempt (the one in flight is not yet in `task_attempts`); `ended` is only given once finished."""
    out: dict[str, RunRows] = defaultdict(RunRows)
    for chunk in _chunks(run_ids):
        for run_id, task_id, map_index, queued, started in conn.execute(_earlier_query(chunk)).all():
            out[run_id].earlier.setdefault((task_id, map_index), []).append(Attempt(queued, started))
        for row in conn.execute(_instances_query(chunk)).all():
            out[row[0]].instances.append(tuple(row[1:]))
    return out


def _instances_query(run_ids: Sequence[str]) -> Select[Any]:
    ti = task_instances
    finished = ti.c.state.in_(sorted(_FINISHED))
    return (
        select(
            ti.c.run_id,
            ti.c.task_id,
            ti.c.map_index,
            _epoch(ti.c.queued_at, "queued"),
            _epoch(ti.c.started_at, "started"),
            case((finished, EpochSeconds(ti.c.ended_at)), else_=None).label("ended"),
        )
    ).where(ti.c.run_id.in_(run_ids))


def _earlier_query(run_ids: Sequence[str]) -> Select[Any]:
    """Attempts the instance rows no longer show: before their current try, of cleared instances
    (no queued time: their attempts all came before the clear), and of instances a clear removed."""
    ta, ti = task_attempts, task_instances
    joined = ta.outerjoin(
        ti,
        and_(
            ti.c.run_id == ta.c.run_id,
            ti.c.task_id == ta.c.task_id,
            ti.c.map_index == ta.c.map_index,
            ti.c.run_id.in_(run_ids),  # said again so that PostgreSQL never hashes every instance row
        ),
    )
    return (
        select(
            ta.c.run_id,
            ta.c.task_id,
            ta.c.map_index,
            _epoch(ta.c.queued_at, "queued"),
            _epoch(ta.c.started_at, "started"),
        )
        .select_from(joined)
        .where(
            ta.c.run_id.in_(run_ids),
            or_(ti.c.run_id.is_(None), ta.c.try_number < ti.c.try_number, ti.c.queued_at.is_(None)),
        )
        .order_by(ta.c.run_id, ta.c.task_id, ta.c.map_index, ta.c.try_number)
    )


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


@dataclass(frozen=True, slots=True)
class TenantLoad:
    """What a tenant has waiting or in flight now."""

    tenant_id: str
    tasks: dict[str, int]
    """Task instances per state, among SCHEDULED, QUEUED and RUNNING."""
    runs: dict[str, int]
    """Runs per state, among QUEUED and RUNNING."""


def runs_held(conn: Connection, tenants: frozenset[str] | None) -> dict[str, int]:
    """Active runs (of `tenants`; None: all) per scheduler that holds their lease."""
    query = (
        select(runs.c.owner, func.count())
        .where(runs.c.state.in_(ACTIVE_RUNS), runs.c.owner.is_not(None))
        .group_by(runs.c.owner)
    )
    if tenants is not None:
        query = query.where(runs.c.tenant_id.in_(sorted(tenants)))
    return {owner: int(count) for owner, count in conn.execute(query).all()}


def tenant_loads(conn: Connection, tenants: frozenset[str] | None) -> list[TenantLoad]:
    """Per tenant (of `tenants`; None: all) with anything active: task instances waiting or running, active runs."""
    ti_query = (
        select(runs.c.tenant_id, task_instances.c.state, func.count())
        .select_from(task_instances.join(runs, runs.c.run_id == task_instances.c.run_id))
        .where(task_instances.c.state.in_(WAITING_TASKS))
        .group_by(runs.c.tenant_id, task_instances.c.state)
    )
    run_query = (
        select(runs.c.tenant_id, runs.c.state, func.count())
        .where(runs.c.state.in_(ACTIVE_RUNS))
        .group_by(runs.c.tenant_id, runs.c.state)
    )
    if tenants is not None:
        ti_query = ti_query.where(runs.c.tenant_id.in_(sorted(tenants)))
        run_query = run_query.where(runs.c.tenant_id.in_(sorted(tenants)))
    tasks: dict[str, dict[str, int]] = defaultdict(dict)
    active: dict[str, dict[str, int]] = defaultdict(dict)
    for tenant, state, count in conn.execute(ti_query).all():
        tasks[tenant][state] = int(count)
    for tenant, state, count in conn.execute(run_query).all():
        active[tenant][state] = int(count)
    return [TenantLoad(t, tasks.get(t, {}), active.get(t, {})) for t in sorted(set(tasks) | set(active))]
