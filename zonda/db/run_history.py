"""Task states across many runs at once, and every attempt of a run: the reads behind the UI's grid,
the DAG list's recent runs and the Gantt chart, each one query however many runs or tasks there are."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from zonda.db.schema import runs, task_attempts, task_instances


@dataclass(frozen=True)
class CellState:
    """The instances of one task in one run: how many are in each state."""

    run_id: str
    task_id: str
    state: str
    count: int


@dataclass(frozen=True)
class RecentRun:
    dag_id: str
    run_id: str
    state: str
    created_at: datetime


@dataclass(frozen=True)
class AttemptSpan:
    """One try of one task instance, with the times that bound its queued and running spans."""

    task_id: str
    map_index: int
    try_number: int
    state: str
    queued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None


def cell_states(conn: Connection, run_ids: Sequence[str]) -> list[CellState]:
    """Per (run, task, state), the number of task instances (mapped tasks have one per map index)."""
    if not run_ids:
        return []
    ti = task_instances.c
    query = (
        select(ti.run_id, ti.task_id, ti.state, func.count())
        .where(ti.run_id.in_(list(run_ids)))
        .group_by(ti.run_id, ti.task_id, ti.state)
    )
    return [CellState(r[0], r[1], r[2], int(r[3])) for r in conn.execute(query)]


def instance_states(
    conn: Connection, run_ids: Sequence[str], task_id: str, below: int
) -> list[tuple[str, int, str]]:
    """(run, map index, state) of one mapped task's instances with a map index under `below`."""
    if not run_ids:
        return []
    ti = task_instances.c
    query = select(ti.run_id, ti.map_index, ti.state).where(
        ti.run_id.in_(list(run_ids)), ti.task_id == task_id, ti.map_index >= 0, ti.map_index < below
    )
    return [(r[0], int(r[1]), r[2]) for r in conn.execute(query)]


def recent_runs(conn: Connection, dag_ids: Sequence[str], per_dag: int) -> list[RecentRun]:
    """The newest `per_dag` runs of each DAG, newest first within a DAG."""
    if not dag_ids:
        return []
    rank = (
        func.row_number()
        .over(partition_by=runs.c.dag_id, order_by=(runs.c.created_at.desc(), runs.c.run_id.desc()))
        .label("rank")
    )
    ranked = (
        select(runs.c.dag_id, runs.c.run_id, runs.c.state, runs.c.created_at, rank)
        .where(runs.c.dag_id.in_(list(dag_ids)))
        .subquery()
    )
    query = (
        select(ranked.c.dag_id, ranked.c.run_id, ranked.c.state, ranked.c.created_at)
        .where(ranked.c.rank <= per_dag)
        .order_by(ranked.c.dag_id, ranked.c.rank)
    )
    return [RecentRun(r.dag_id, r.run_id, r.state, r.created_at) for r in conn.execute(query)]


def run_attempts(conn: Connection, run_id: str) -> list[AttemptSpan]:
    """Every recorded attempt of every task instance of a run (finished tries; the current one is on
    the task instance itself)."""
    a = task_attempts.c
    query = select(
        a.task_id, a.map_index, a.try_number, a.state, a.queued_at, a.started_at, a.ended_at
    ).where(a.run_id == run_id)
    return [AttemptSpan(*r) for r in conn.execute(query)]
