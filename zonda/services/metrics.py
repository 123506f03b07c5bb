"""The latency dashboard's figures and the system page, for the tenants the caller reads.

Figures are computed here from the rows of the window (`core.metrics`), not kept as counters, so
they can be checked against the runs they come from. Reading them needs READ on the tenant: they
are reductions of runs its members can already list.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from zonda.api.schemas.metrics import (
    BucketFigures,
    DagLatency,
    DatabaseStatus,
    Figures,
    LatencyReport,
    SchedulerStatus,
    SystemStatus,
    TenantLatency,
    TenantLoad,
)
from zonda.core import metrics as m
from zonda.core.ids import tenant_of
from zonda.core.liveness import SCHEDULER_BEATS, alive, heartbeat_age
from zonda.core.permissions import Action
from zonda.core.states import RunState
from zonda.db import metrics as db
from zonda.db.components import list_components
from zonda.db.dags import get_dag, get_version
from zonda.db.engine import read_txn
from zonda.errors import NotFoundError, ParamsError
from zonda.services.access import require, visible
from zonda.services.dags import check_dag
from zonda.services.times import as_utc
from zonda.services.workers import list_workers

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from zonda.services.context import Services

log = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(hours=24)


def latency_report(
    svc: Services,
    *,
    tenant: str | None = None,
    dag_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    bucket: str | None = None,
) -> LatencyReport:
    """Figures of `dag_id`, else of `tenant`, else of every tenant the caller reads, over [since, until).

    Defaults: until now, since 24 hours before. Another tenant's DAG or tenant is NotFoundError;
    a bad window or bucket is ParamsError.
    """
    until = as_utc(until, "until") or svc.now()
    since = as_utc(since, "since") or _before(until, DEFAULT_WINDOW)
    name, window = m.choose_bucket(m.epoch(since), m.epoch(until), bucket)
    tenants = _scope(svc, tenant, dag_id)
    with read_txn(svc.engine) as conn:
        if dag_id is not None and get_dag(conn, dag_id) is None:
            raise NotFoundError(f"DAG '{dag_id}' not found")
        per_dag = _collect(conn, window, since, until, tenants, dag_id)
    per_tenant = _merge_by_tenant(per_dag)
    everything = m.Series()
    for series in per_tenant.values():
        everything.merge(series)
    seconds = window.until - window.since
    total = _figures(everything.total(), seconds)
    buckets = _series(everything, window)
    return LatencyReport(
        since=since,
        until=until,
        bucket=name,
        bucket_seconds=window.size,
        tenant_id=tenant,
        dag_id=dag_id,
        total=total,
        series=buckets,
        tenants=[
            # One tenant's figures are everything's: reduce them once.
            TenantLatency(tenant_id=t, total=total, series=buckets)
            if len(per_tenant) == 1
            else TenantLatency(tenant_id=t, total=_figures(s.total(), seconds), series=_series(s, window))
            for t, s in sorted(per_tenant.items())
        ],
        dags=[
            DagLatency(dag_id=d, tenant_id=tenant_of(d), total=_figures(s.total(), seconds))
            for d, s in sorted(per_dag.items())
        ],
    )


def _scope(svc: Services, tenant: str | None, dag_id: str | None) -> frozenset[str] | None:
    """The tenants whose runs count; raises unless the caller reads the tenant or DAG named."""
    if dag_id is not None:
        check_dag(svc, dag_id, Action.READ)
    if tenant is not None:
        require(svc, tenant, Action.READ, f"tenant '{tenant}'")
        return frozenset({tenant})
    return visible(svc)


def _collect(
    conn: Connection,
    window: m.Window,
    since: datetime,
    until: datetime,
    tenants: frozenset[str] | None,
    dag_id: str | None,
) -> dict[str, m.Series]:
    """Each DAG's series over the window, from the runs that overlap it."""
    if tenants is not None and not tenants:
        return {}
    runs = db.window_runs(conn, since=since, until=until, tenants=tenants, dag_id=dag_id)
    rows = db.run_rows(conn, [r.run_id for r in runs])
    upstreams: dict[tuple[str, int], Mapping[str, Sequence[str]]] = {}
    per_dag: dict[str, m.Series] = {}
    for run in runs:
        key = (run.dag_id, run.version)
        if key not in upstreams:
            upstreams[key] = _upstreams(conn, *key)
        series = per_dag.setdefault(run.dag_id, m.Series())
        m.collect(_run_times(run, rows.get(run.run_id)), upstreams[key], window, series)
    return per_dag


def _upstreams(conn: Connection, dag_id: str, version: int) -> Mapping[str, Sequence[str]]:
    """The measured upstreams of the version a run pinned (none if the version row is gone)."""
    row = get_version(conn, dag_id, version)
    return m.measured_upstreams(row.spec) if row is not None else {}


def _run_times(run: db.WindowRun, rows: db.RunRows | None) -> m.RunTimes:
    ended = run.ended if run.state in (RunState.SUCCESS.value, RunState.FAILED.value) else None
    return m.RunTimes(
        run_id=run.run_id,
        tenant_id=run.tenant_id,
        dag_id=run.dag_id,
        created=run.created,
        started=run.started,
        ended=ended,
        failed=run.state == RunState.FAILED.value,
        instances=rows.instances if rows else [],
        earlier=rows.earlier if rows else {},
    )


def _merge_by_tenant(per_dag: Mapping[str, m.Series]) -> dict[str, m.Series]:
    out: dict[str, m.Series] = {}
    for dag_id, series in per_dag.items():
        out.setdefault(tenant_of(dag_id), m.Series()).merge(series)
    return out


def _figures(sample: m.Sample, seconds: float) -> Figures:
    return Figures.model_validate(asdict(m.figures(sample, seconds)))


def _series(series: m.Series, window: m.Window) -> list[BucketFigures]:
    """One entry per bucket of the window, in time order (empty buckets included)."""
    buckets = series.buckets()
    out = []
    for i in range(window.count):
        sample = buckets.get(i) or m.Sample()
        reduced = asdict(m.figures(sample, window.span(i)))
        out.append(BucketFigures(start=m.from_epoch(window.start(i)), seconds=window.span(i), **reduced))
    return out


def _before(until: datetime, span: timedelta) -> datetime:
    try:
        return until - span
    except OverflowError:
        message = f"until {until.isoformat()} leaves no room for the default window; give since too"
        raise ParamsError(message, [{"param": "until", "message": message}]) from None


# -- system --------------------------------------------------------------------------------------


def system_status(svc: Services) -> SystemStatus:
    """Schedulers, workers, the DB and what each tenant the caller reads has waiting or running now."""
    now = svc.now()
    try:
        database, schedulers, loads = _read_system(svc, now)
    except SQLAlchemyError as exc:
        log.warning("system status: metadata DB not reachable: %s", exc)
        problem = f"the metadata DB did not answer: {exc.__class__.__name__}"
        return SystemStatus(
            status="degraded",
            problems=[problem],
            checked_at=now,
            database=DatabaseStatus(reachable=False, dialect=svc.engine.dialect.name),
            schedulers=[],
            workers=[],
            tenants=[],
        )
    problems = _scheduler_problems(schedulers, svc.settings.heartbeat_interval)
    return SystemStatus(
        status="degraded" if problems else "ok",
        problems=problems,
        checked_at=now,
        database=database,
        schedulers=schedulers,
        workers=list_workers(svc),
        tenants=loads,
    )


def _read_system(
    svc: Services, now: datetime
) -> tuple[DatabaseStatus, list[SchedulerStatus], list[TenantLoad]]:
    started = time.perf_counter()
    with read_txn(svc.engine) as conn:
        conn.execute(text("select 1"))
        round_trip = (time.perf_counter() - started) * 1000.0
        components = list_components(conn, kind="scheduler")
        loads = db.tenant_loads(conn, visible(svc))
        held = db.runs_held(conn, visible(svc))
    interval = svc.settings.heartbeat_interval
    schedulers = []
    waiting: dict[str, Counter[str]] = {}
    for c in components:
        age = heartbeat_age(now, c.heartbeat_at)
        if alive(age, interval, SCHEDULER_BEATS):
            for item in c.waiting or []:
                waiting.setdefault(item["tenant"], Counter())[item["queue"]] += item["tasks"]
        schedulers.append(
            SchedulerStatus(
                id=c.id,
                hostname=c.hostname,
                pid=c.pid,
                started_at=c.started_at,
                heartbeat_at=c.heartbeat_at,
                heartbeat_age_seconds=round(age, 3),
                alive=alive(age, interval, SCHEDULER_BEATS),
                runs=held.get(c.id, 0),
            )
        )
    database = DatabaseStatus(
        reachable=True, dialect=svc.engine.dialect.name, round_trip_ms=round(round_trip, 3)
    )
    return database, schedulers, [_load(load, waiting.get(load.tenant_id, Counter())) for load in loads]


def _load(load: db.TenantLoad, waiting: Counter[str]) -> TenantLoad:
    return TenantLoad(
        tenant_id=load.tenant_id,
        scheduled_tasks=load.tasks.get("scheduled", 0),
        queued_tasks=load.tasks.get("queued", 0),
        running_tasks=load.tasks.get("running", 0),
        queued_runs=load.runs.get("queued", 0),
        running_runs=load.runs.get("running", 0),
        waiting_by_queue=dict(sorted(waiting.items())),
    )


def _scheduler_problems(schedulers: list[SchedulerStatus], interval: float) -> list[str]:
    """No live scheduler, and each registered one whose heartbeat stopped, are problems."""
    limit = SCHEDULER_BEATS * interval
    problems = [
        f"scheduler {s.id} on {s.hostname} last beat {s.heartbeat_age_seconds:.0f} s ago "
        f"(more than {limit:g} s): it is stopped or cannot reach the metadata DB"
        for s in schedulers
        if not s.alive
    ]
    if not any(s.alive for s in schedulers):
        problems.insert(
            0,
            "no scheduler is running: runs are not started or advanced; start `zonda up` or `zonda scheduler`",
        )
    return problems
