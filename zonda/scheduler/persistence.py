"""The scheduler's reads and batched writes of runs and task instances (one transaction per batch)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, delete, insert, select, update

from zonda.core.outputs import ArtifactRef
from zonda.core.run_graph import RunGraph, TaskInstance
from zonda.core.states import RunState, TaskState
from zonda.db.schema import runs, task_attempts, task_instances

ti = task_instances.c


@dataclass(frozen=True)
class RunRow:
    """A run as stored."""

    run_id: str
    dag_id: str
    version: int
    state: RunState
    key: str | None
    params: dict[str, Any]
    trigger: str
    logical_date: datetime | None
    created_at: datetime
    started_at: datetime | None


def load_run(conn: Connection, run_id: str) -> tuple[RunRow, list[TaskInstance]] | None:
    row = conn.execute(select(runs).where(runs.c.run_id == run_id)).first()
    if row is None:
        return None
    tis = conn.execute(select(task_instances).where(ti.run_id == run_id))
    return _run_row(row), [_instance(r) for r in tis]


def runs_in_state(
    conn: Connection, state: RunState, exclude: set[str], limit: int = 1000
) -> list[tuple[str, str, int]]:
    """(run_id, dag_id, version) of runs in `state`, oldest first, that the scheduler does not hold yet."""
    query = (
        select(runs.c.run_id, runs.c.dag_id, runs.c.version)
        .where(runs.c.state == state.value)
        .order_by(runs.c.created_at)
        .limit(limit)
    )
    return [(r.run_id, r.dag_id, r.version) for r in conn.execute(query) if r.run_id not in exclude]


_UPDATE = (
    update(task_instances)
    .where(
        and_(
            ti.run_id == bindparam("b_run"),
            ti.task_id == bindparam("b_task"),
            ti.map_index == bindparam("b_map"),
        )
    )
    .values(
        {
            name: bindparam(name)
            for name in (
                "state",
                "try_number",
                "max_tries",
                "queued_at",
                "started_at",
                "ended_at",
                "next_try_at",
                "output_serializer",
                "output_size",
                "output_data",
                "output_uri",
                "output_length",
                "error",
            )
        }
    )
)
_DELETE = delete(task_instances).where(
    and_(
        ti.run_id == bindparam("b_run"), ti.task_id == bindparam("b_task"), ti.map_index == bindparam("b_map")
    )
)


def flush(conn: Connection, graphs: Iterable[tuple[RunGraph, datetime | None]]) -> None:
    """Write every pending change of these runs; each graph's `changes` is reset afterwards."""
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    deletes: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    for graph, started_at in graphs:
        changes = graph.changes
        if not changes:
            continue
        run_id = graph.run_id
        deletes.extend({"b_run": run_id, "b_task": k[0], "b_map": k[1]} for k in changes.deleted)
        inserts.extend({"run_id": run_id, **_values(graph.instance(k))} for k in changes.inserted)
        updates.extend(
            {"b_run": run_id, "b_task": k[0], "b_map": k[1], **_values(graph.instance(k))}
            for k in changes.updated - changes.inserted
        )
        attempts.extend({"run_id": run_id, **vars_of(a)} for a in changes.attempts)
        if changes.run_changed:
            _update_run(conn, graph, started_at)
        graph.changes = type(changes)()
    if deletes:
        conn.execute(_DELETE, deletes)
    if inserts:
        conn.execute(insert(task_instances), inserts)
    if updates:
        conn.execute(_UPDATE, updates)
    if attempts:
        conn.execute(insert(task_attempts), attempts)


def _update_run(conn: Connection, graph: RunGraph, started_at: datetime | None) -> None:
    values: dict[str, Any] = {"state": graph.state.value, "ended_at": graph.ended_at}
    if started_at is not None:
        values["started_at"] = started_at
    conn.execute(update(runs).where(runs.c.run_id == graph.run_id).values(values))


def vars_of(attempt: Any) -> dict[str, Any]:
    return {
        "task_id": attempt.task_id,
        "map_index": attempt.map_index,
        "try_number": attempt.try_number,
        "state": attempt.state.value,
        "queued_at": attempt.queued_at,
        "started_at": attempt.started_at,
        "ended_at": attempt.ended_at,
        "error": attempt.error,
    }


def _values(t: TaskInstance) -> dict[str, Any]:
    out = t.output
    return {
        "task_id": t.task_id,
        "map_index": t.map_index,
        "state": t.state.value,
        "try_number": t.try_number,
        "max_tries": t.max_tries,
        "queued_at": t.queued_at,
        "started_at": t.started_at,
        "ended_at": t.ended_at,
        "next_try_at": t.next_try_at,
        "output_serializer": out.serializer if out else None,
        "output_size": out.size if out else None,
        "output_data": out.data if out else None,
        "output_uri": out.uri if out else None,
        "output_length": t.length,
        "error": t.error,
    }


def _instance(r: Row[Any]) -> TaskInstance:
    output = None
    if r.output_serializer is not None:
        output = ArtifactRef(r.output_serializer, r.output_size or 0, r.output_data, r.output_uri)
    return TaskInstance(
        task_id=r.task_id,
        map_index=r.map_index,
        state=TaskState(r.state),
        try_number=r.try_number,
        max_tries=r.max_tries,
        queued_at=r.queued_at,
        started_at=r.started_at,
        ended_at=r.ended_at,
        next_try_at=r.next_try_at,
        output=output,
        length=r.output_length,
        error=r.error,
    )


def _run_row(r: Row[Any]) -> RunRow:
    return RunRow(
        r.run_id,
        r.dag_id,
        r.version,
        RunState(r.state),
        r.key,
        r.params or {},
        r.trigger,
        r.logical_date,
        r.created_at,
        r.started_at,
    )
