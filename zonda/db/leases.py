"""Run leases: each active run belongs to one scheduler, which renews its lease while it lives.

A scheduler may take a run that has no owner, whose owner's lease ran out, or that has ended
(to apply a command such as clear). Claims are single UPDATE statements, so two schedulers can
never both win the same run.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, and_, any_, bindparam, or_, select, text, update
from sqlalchemy.dialects import postgresql

from zonda.core.states import RunState
from zonda.db.dialect import Sent, send
from zonda.db.schema import runs

ACTIVE = (RunState.QUEUED.value, RunState.RUNNING.value)


_CLAIM = (
    update(runs)
    .where(
        and_(
            runs.c.run_id.in_(bindparam("b_runs", expanding=True)),
            or_(
                runs.c.owner.is_(None),
                runs.c.owner == bindparam("b_owner"),
                runs.c.lease_until < bindparam("b_now"),
                runs.c.state.not_in(ACTIVE),
            ),
        )
    )
    .values(owner=bindparam("b_owner"), lease_until=bindparam("b_until"))
    .returning(runs.c.run_id)
)
"""Built once: every new run is claimed (building it cost more than running it)."""


def claim(conn: Connection, run_ids: Collection[str], owner: str, until: datetime, now: datetime) -> set[str]:
    """Take those of `run_ids` that are free, expired, ended, or already ours, in one statement;
    returns the ids taken."""
    if not run_ids:
        return set()
    params = {"b_runs": list(run_ids), "b_owner": owner, "b_now": now, "b_until": until}
    return {row.run_id for row in conn.execute(_CLAIM, params)}


def claim_from(conn: Connection, run_id: str, owner: str, until: datetime, dead: str) -> bool:
    """Take a run from a scheduler known to be dead, without waiting for its lease to run out."""
    stmt = (
        update(runs)
        .where(and_(runs.c.run_id == run_id, runs.c.owner == dead))
        .values(owner=owner, lease_until=until)
    )
    return bool(conn.execute(stmt).rowcount)


def claim_all_from(conn: Connection, dead: str, owner: str, until: datetime) -> list[str]:
    """Take every active run of scheduler `dead` in one statement, so that one scheduler takes all
    of them and its reply channel has a single follower.

    A scheduler renews all its leases together, so one expired lease means the scheduler is gone;
    a run it claimed just before dying may not have expired yet and is taken too.
    """
    stmt = (
        update(runs)
        .where(and_(runs.c.owner == dead, runs.c.state.in_(ACTIVE)))
        .values(owner=owner, lease_until=until)
        .returning(runs.c.run_id)
    )
    return [row.run_id for row in conn.execute(stmt)]


def renew(conn: Connection, owner: str, run_ids: Collection[str], until: datetime) -> set[str]:
    """Extend the leases of these runs; returns those `owner` still holds (the others were taken)."""
    if not run_ids:
        return set()
    rows = conn.execute(_RENEW, {"b_owner": owner, "b_runs": list(run_ids), "b_until": until})
    return {row.run_id for row in rows}


def renew_sent(conn: Connection, owner: str, run_ids: Collection[str], until: datetime) -> Sent:
    """`renew` sent inside `pipelined` on PostgreSQL: the runs `owner` still holds are read once the
    pipeline has ended."""
    return send(conn, _RENEW_ANY, {"b_owner": owner, "b_runs": list(run_ids), "b_until": until})


_RENEW = (
    update(runs)
    .where(and_(runs.c.owner == bindparam("b_owner"), runs.c.run_id.in_(bindparam("b_runs", expanding=True))))
    .values(lease_until=bindparam("b_until"))
    .returning(runs.c.run_id)
)
"""Built once: the writer renews with every batch (the runs it writes; with the heartbeat, all held)."""
_RENEW_ANY = (
    update(runs)
    .where(
        and_(
            runs.c.owner == bindparam("b_owner"),
            runs.c.run_id == any_(bindparam("b_runs", type_=postgresql.ARRAY(runs.c.run_id.type))),
        )
    )
    .values(lease_until=bindparam("b_until", type_=runs.c.lease_until.type))
    .returning(runs.c.run_id)
)
"""`_RENEW` for `send` (one array parameter instead of one per run, which SQLAlchemy expands)."""


def orphaned(conn: Connection, now: datetime, limit: int = 500) -> list[tuple[str, str | None]]:
    """(run_id, previous owner) of active runs whose owner stopped renewing its lease."""
    query = (
        select(runs.c.run_id, runs.c.owner)
        .where(and_(runs.c.state.in_(ACTIVE), runs.c.owner.is_not(None), runs.c.lease_until < now))
        .order_by(runs.c.created_at)
        .limit(limit)
    )
    return [(r.run_id, r.owner) for r in conn.execute(query)]


def held_by(conn: Connection, owners: Collection[str]) -> list[tuple[str, str]]:
    """(run_id, owner) of the active runs these schedulers hold."""
    if not owners:
        return []
    query = select(runs.c.run_id, runs.c.owner).where(
        and_(runs.c.state.in_(ACTIVE), runs.c.owner.in_(list(owners)))
    )
    return [(r.run_id, r.owner) for r in conn.execute(query)]


def owner_of(conn: Connection, run_id: str) -> str | None:
    """The scheduler that holds `run_id` (None if none or no such run)."""
    return conn.execute(select(runs.c.owner).where(runs.c.run_id == run_id)).scalar_one_or_none()


def release(conn: Connection, owner: str, now: datetime) -> None:
    """End every lease of `owner` now, so that another scheduler can take its runs at once."""
    conn.execute(update(runs).where(runs.c.owner == owner).values(lease_until=now))


def dags_held_elsewhere(
    conn: Connection, dag_ids: Collection[str], owner: str, skip_locked: bool = False
) -> set[str]:
    """Of `dag_ids`, those with an active run that a scheduler other than `owner` holds.

    A DAG is served by one scheduler at a time, so that its max_active_runs and max_active_tasks,
    which each scheduler counts in memory, hold across schedulers (ADR 0005). On PostgreSQL each
    DAG's advisory lock is taken first, in one order, until the transaction ends: a scheduler that
    then claims one of their runs is the only one doing so. Expired leases count too: a dead
    scheduler's runs go to one scheduler together (`claim_all_from`), which then serves the DAG.
    With `skip_locked` (for a caller that may already hold run rows), a DAG whose lock another
    transaction holds counts as held elsewhere instead of being waited for.
    """
    if not dag_ids:
        return set()
    ids = sorted(dag_ids)
    busy: set[str] = set()
    if conn.dialect.name == "postgresql" and skip_locked:
        busy = set(conn.execute(_TRY_LOCK_DAGS, {"b_ids": ids}).scalars())
    elif conn.dialect.name == "postgresql":
        conn.execute(_LOCK_DAGS, {"b_ids": ids})
    return busy | held_by_others(conn, "dag_id", ids, owner)


DAG_LOCKS = 7_426_002
"""PostgreSQL advisory locks of DAGs being claimed: two-key form, this key, then the DAG id's hash."""

_LOCK_DAGS = text(
    f"SELECT count(pg_advisory_xact_lock({DAG_LOCKS}, hashtext(d))) FROM unnest(CAST(:b_ids AS text[])) AS d"
)
_TRY_LOCK_DAGS = text(
    f"SELECT d FROM unnest(CAST(:b_ids AS text[])) AS d WHERE NOT pg_try_advisory_xact_lock({DAG_LOCKS}, hashtext(d))"
)


def held_by_others(
    conn: Connection, column: Literal["dag_id", "tenant_id"], ids: list[str], owner: str
) -> set[str]:
    """Of `ids` (DAG or tenant ids, by `column`), those with an active run that a scheduler other
    than `owner` holds, whose lease ran out or not."""
    return {row[0] for row in conn.execute(_HELD_BY_OTHERS[column], {"b_ids": ids, "b_owner": owner})}


_HELD_BY_OTHERS = {
    name: select(runs.c[name])
    .where(
        and_(
            runs.c.state.in_(ACTIVE),
            runs.c.owner.is_not(None),
            runs.c.owner != bindparam("b_owner"),
            runs.c[name].in_(bindparam("b_ids", expanding=True)),
        )
    )
    .distinct()
    for name in ("dag_id", "tenant_id")
}
