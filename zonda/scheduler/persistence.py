"""The scheduler's reads and batched writes of runs and task instances (one transaction per batch)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, delete, func, select, update

from zonda.core.ids import tenant_of
from zonda.core.outputs import ArtifactRef
from zonda.core.run_graph import Attempt, RunGraph, TaskInstance
from zonda.core.states import RunState, TaskState
from zonda.core.usage import Charge, rollup
from zonda.db.dialect import Sent, insert_new, insert_new_sent, pipelined, upsert
from zonda.db.schema import runs, task_attempts, task_instances
from zonda.db.usage import add_usage

ti = task_instances.c
AttemptKey = tuple[str, str, int, int]
_ATTEMPT_KEY = ("run_id", "task_id", "map_index", "try_number")


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


LOAD_CHUNK = 500
"""Runs loaded per pair of queries (a takeover may load thousands)."""
_LOAD_RUNS = select(runs).where(runs.c.run_id.in_(bindparam("b_runs", expanding=True)))
_LOAD_INSTANCES = select(task_instances).where(ti.run_id.in_(bindparam("b_runs", expanding=True)))
"""Built once: every run a scheduler adopts is loaded (building them cost more than running them)."""


def load_runs(conn: Connection, run_ids: Sequence[str]) -> list[tuple[RunRow, list[TaskInstance]]]:
    """The runs of `run_ids` that exist, in that order, each with its task instances: two queries
    per `LOAD_CHUNK` runs, however many runs a scheduler adopts at once."""
    loaded: list[tuple[RunRow, list[TaskInstance]]] = []
    for start in range(0, len(run_ids), LOAD_CHUNK):
        chunk = list(run_ids[start : start + LOAD_CHUNK])
        rows = {r.run_id: r for r in conn.execute(_LOAD_RUNS, {"b_runs": chunk})}
        instances: dict[str, list[TaskInstance]] = {run_id: [] for run_id in rows}
        for r in conn.execute(_LOAD_INSTANCES, {"b_runs": list(rows)}):
            instances[r.run_id].append(_instance(r))
        loaded.extend((_run_row(rows[run_id]), instances[run_id]) for run_id in chunk if run_id in rows)
    return loaded


def runs_in_state(
    conn: Connection,
    state: RunState,
    exclude: set[str],
    limit: int = 1000,
    skip: frozenset[str] = frozenset(),
) -> list[tuple[str, str, int]]:
    """(run_id, dag_id, version) of runs in `state`, oldest first, that the scheduler does not hold yet,
    of tenants not in `skip` (so that a tenant at its quota cannot hide the others' runs)."""
    query = (
        select(runs.c.run_id, runs.c.dag_id, runs.c.version)
        .where(runs.c.state == state.value)
        .order_by(runs.c.created_at)
        .limit(limit)
    )
    if skip:
        query = query.where(runs.c.tenant_id.not_in(sorted(skip)))
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
_RUN_UPDATE = (
    update(runs)
    .where(runs.c.run_id == bindparam("b_run"))
    .values(
        state=bindparam("b_state"),
        ended_at=bindparam("b_ended", type_=runs.c.ended_at.type),
        started_at=func.coalesce(bindparam("b_started", type_=runs.c.started_at.type), runs.c.started_at),
    )
)
"""Every run whose state changed, in one statement (executemany: one round trip on PostgreSQL, not
one per run); a run's `started_at` is only ever set, never cleared."""
_DELETE = delete(task_instances).where(
    and_(
        ti.run_id == bindparam("b_run"), ti.task_id == bindparam("b_task"), ti.map_index == bindparam("b_map")
    )
)


@dataclass
class Rows:
    """One batch of writes, collected in the loop and written by the writer thread."""

    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    run_updates: list[dict[str, Any]] = field(default_factory=list)
    charges: dict[AttemptKey, Charge] = field(default_factory=dict)
    """What each attempt in `attempts` costs; billed only when its attempt row is new."""

    def __bool__(self) -> bool:
        return bool(self.inserts or self.updates or self.deletes or self.attempts or self.run_updates)

    def only(self, run_ids: set[str]) -> Rows:
        """The rows of these runs only."""

        def keep(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [r for r in rows if r.get("run_id", r.get("b_run")) in run_ids]

        return Rows(
            keep(self.inserts),
            keep(self.updates),
            keep(self.deletes),
            keep(self.attempts),
            keep(self.run_updates),
            {k: c for k, c in self.charges.items() if k[0] in run_ids},
        )


def collect(graphs: Iterable[tuple[RunGraph, datetime | None]]) -> Rows:
    """The rows for every pending change of these runs; each graph's `changes` is reset."""
    rows = Rows()
    for graph, started_at in graphs:
        changes = graph.changes
        if not changes:
            continue
        run_id = graph.run_id
        rows.deletes.extend({"b_run": run_id, "b_task": k[0], "b_map": k[1]} for k in changes.deleted)
        rows.inserts.extend({"run_id": run_id, **_values(graph.instance(k))} for k in changes.inserted)
        rows.updates.extend(
            {"b_run": run_id, "b_task": k[0], "b_map": k[1], **_values(graph.instance(k))}
            for k in changes.updated - changes.inserted
        )
        rows.attempts.extend({"run_id": run_id, **vars_of(a)} for a in changes.attempts)
        rows.charges.update(
            ((run_id, a.task_id, a.map_index, a.try_number), _charge(graph, a)) for a in changes.attempts
        )
        if changes.run_changed:
            rows.run_updates.append(_run_values(graph, started_at))
        graph.changes = type(changes)()
    return rows


def write(conn: Connection, rows: Rows) -> None:
    """Write a batch. Idempotent, so a batch whose commit was not confirmed can be written again.

    Usage is added for the attempts whose rows this write inserted, so a repeated batch bills nothing
    twice. The attempts go first, for their insert says which rows were new; every other statement
    then goes to PostgreSQL in one round trip (`pipelined`).
    """
    inserted = insert_new(conn, task_attempts, rows.attempts, _ATTEMPT_KEY) if rows.attempts else []
    with pipelined(conn):
        _send_writes(conn, rows, [rows.charges[key] for key in inserted])


def send_at_once(conn: Connection, rows: Rows) -> Sent | None:
    """Inside `pipelined` on PostgreSQL: the whole batch, its usage billed as if every attempt's row
    were new; the attempts' insert (None without attempts) then says which were. The caller rolls the
    batch back and uses `write` if one was not (a repeated batch). This saves the round trip `write`
    waits for: a Celery task's dispatch waits for it when its run's lease is not fresh (ADR 0005)."""
    new = insert_new_sent(conn, task_attempts, rows.attempts, _ATTEMPT_KEY) if rows.attempts else None
    _send_writes(conn, rows, list(rows.charges.values()))
    return new


def _send_writes(conn: Connection, rows: Rows, charges: list[Charge]) -> None:
    """Every statement of a batch but the attempts' insert, none of which returns rows."""
    if rows.deletes:
        conn.execute(_DELETE, rows.deletes)
    if rows.inserts:
        upsert(conn, task_instances, rows.inserts, ["run_id", "task_id", "map_index"])
    if rows.updates:
        conn.execute(_UPDATE, rows.updates)
    if charges:
        add_usage(conn, rollup(charges))
    if rows.run_updates:
        conn.execute(_RUN_UPDATE, rows.run_updates)


def _run_values(graph: RunGraph, started_at: datetime | None) -> dict[str, Any]:
    return {
        "b_run": graph.run_id,
        "b_state": graph.state.value,
        "b_ended": graph.ended_at,
        "b_started": started_at,
    }


def _charge(graph: RunGraph, attempt: Attempt) -> Charge:
    task = graph.spec.task(attempt.task_id)
    return Charge(tenant_of(graph.spec.dag_id), attempt.started_at, attempt.ended_at, task.cpu, task.gpu)


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
