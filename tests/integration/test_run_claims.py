"""Claiming and loading many runs at once (a scheduler adopting a burst of runs), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, update

from tests.integration.dag_seed import seed_etl
from zonda.clock import utc_now
from zonda.core.ids import DEFAULT_TENANT, new_run_id
from zonda.db import leases
from zonda.db.dags import latest_version
from zonda.db.engine import read_txn, write_txn
from zonda.db.runs import create_run
from zonda.db.schema import runs
from zonda.scheduler import persistence


def _create_runs(engine: Engine, count: int) -> list[str]:
    seed_etl(engine, DEFAULT_TENANT)
    run_ids = [new_run_id() for _ in range(count)]
    with write_txn(engine) as conn:
        row = latest_version(conn, f"{DEFAULT_TENANT}/etl")
        assert row is not None
        for run_id in run_ids:
            create_run(
                conn,
                run_id=run_id,
                spec=row.spec,
                version=row.version,
                params={},
                key=None,
                trigger="api",
                logical_date=None,
                now=utc_now(),
            )
    return run_ids


def test_one_claim_takes_the_free_expired_and_own_runs_and_leaves_the_others_leases(engine: Engine) -> None:
    held, expired, free, own = _create_runs(engine, 4)
    now = utc_now()
    with write_txn(engine) as conn:
        for run_id, owner, until in [
            (held, "other", now + timedelta(seconds=30)),
            (expired, "other", now - timedelta(seconds=1)),
            (own, "me", now + timedelta(seconds=30)),
        ]:
            conn.execute(update(runs).where(runs.c.run_id == run_id).values(owner=owner, lease_until=until))
        taken = leases.claim(
            conn, [held, expired, free, own, "no-such-run"], "me", now + timedelta(seconds=60), now
        )
    assert taken == {expired, free, own}
    with read_txn(engine) as conn:
        owners = dict(conn.execute(runs.select().with_only_columns(runs.c.run_id, runs.c.owner)).all())
    assert owners == {held: "other", expired: "me", free: "me", own: "me"}


def test_load_runs_gives_the_runs_asked_for_in_that_order_with_their_instances(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_ids = _create_runs(engine, 5)
    monkeypatch.setattr(persistence, "LOAD_CHUNK", 2)  # several chunks
    wanted = [run_ids[3], "no-such-run", run_ids[0], run_ids[4], run_ids[1]]
    with read_txn(engine) as conn:
        loaded = persistence.load_runs(conn, wanted)
    assert [row.run_id for row, _ in loaded] == [run_ids[3], run_ids[0], run_ids[4], run_ids[1]]
    for _, instances in loaded:
        assert [i.task_id for i in instances] == ["extract"]
