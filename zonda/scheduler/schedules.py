"""Fire schedules: create the runs that are due and store the next fire time in the same transaction.

Storing `next_fire_at` with the runs it produced (and a unique (dag_id, logical_date)) is what
keeps schedules from firing twice or skipping a time across restarts.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Connection

from zonda.core.ids import new_run_id
from zonda.core.params import validate_params
from zonda.core.schedule import due_fires, first_fire
from zonda.core.states import RunTrigger
from zonda.db.dags import DagRow, VersionRow, schedulable_dags, set_next_fire
from zonda.db.runs import create_run, run_exists_for_date

log = logging.getLogger(__name__)


def fire_due(conn: Connection, now: datetime) -> tuple[int, datetime | None]:
    """Create due scheduled runs; returns (runs created, earliest next fire time)."""
    created = 0
    earliest: datetime | None = None
    for dag, version in schedulable_dags(conn, lock=True):
        made, next_fire = _fire_one(conn, dag, version, now)
        created += made
        earliest = next_fire if earliest is None else min(earliest, next_fire)
    return created, earliest


def _fire_one(conn: Connection, dag: DagRow, version: VersionRow, now: datetime) -> tuple[int, datetime]:
    spec = version.spec
    assert spec.schedule is not None
    anchor = datetime.fromisoformat(spec.start_date) if spec.start_date else None
    if dag.next_fire_at is None:
        next_fire = first_fire(spec.schedule, spec.timezone, anchor, now)
        set_next_fire(conn, dag.dag_id, next_fire)
        return 0, next_fire
    fires, next_fire = due_fires(
        spec.schedule, spec.timezone, dag.next_fire_at, now, spec.catchup, anchor=anchor
    )
    params = validate_params(spec.params_schema, {})
    made = 0
    for when in fires:
        if run_exists_for_date(conn, dag.dag_id, when):
            continue
        create_run(
            conn,
            run_id=new_run_id(),
            spec=spec,
            version=version.version,
            params=params,
            key=None,
            trigger=RunTrigger.SCHEDULE.value,
            logical_date=when,
            now=now,
        )
        made += 1
    if next_fire != dag.next_fire_at:
        set_next_fire(conn, dag.dag_id, next_fire)
    return made, next_fire
