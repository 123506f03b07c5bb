"""Leases between real schedulers with local workers.

A scheduler that lets its own leases run out (a stall) keeps its runs as they are, on SQLite and
PostgreSQL.

Taking its own runs over reloaded them from the DB: changes not yet written were lost, and the
local executor queued the running attempt again, so it ran twice. The previous code failed this
test on PostgreSQL. On SQLite it also found its own run's lease expired, but the attempt did not
run a second time within the test (why was not established).

A scheduler on a machine whose clock runs ahead reads time as PostgreSQL's, so it does not take
the runs of a live scheduler (`db/clock.py`).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from tests.integration.in_process import in_process_zonda
from zonda.clock import utc_now
from zonda.db.clock import DbClock
from zonda.db.engine import read_txn, write_txn
from zonda.db.schema import runs as db_runs

pytestmark = pytest.mark.slow

SOURCE = """
import time
from pathlib import Path

from zonda import dag, task


@task
def slow() -> int:
    with open({marks!r}, "a") as marks:
        marks.write("ran\\n")
    time.sleep(3)
    return 1


@dag
def stalled() -> None:
    slow()
"""


def test_a_scheduler_does_not_take_over_its_own_runs_when_their_leases_ran_out(
    db_url: str, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    # Heartbeats far apart: the lease (3 s) is renewed, and leases are checked, every second.
    with in_process_zonda(db_url, tmp_path, heartbeat_interval=60.0, scheduler_lease_seconds=3.0) as zonda:
        zonda.tenant("team-a", SOURCE.format(marks=str(marks)))
        zonda.start_scheduler(workers=2)
        run_id = zonda.trigger("team-a/stalled")
        zonda.wait_until(marks.exists, timeout=15)
        # A stalled scheduler: its lease runs out again just after each renewal, so that the check of
        # leases finds it expired, whichever of the two comes first in the loop.
        until = time.monotonic() + 2.5
        while time.monotonic() < until:
            with write_txn(zonda.engine) as conn:
                conn.execute(update(db_runs).where(db_runs.c.run_id == run_id).values(lease_until=utc_now()))
            time.sleep(0.05)
        (record,) = zonda.wait([run_id], timeout=30)
        time.sleep(0.5)

    assert record.state == "success"
    assert marks.read_text().splitlines() == ["ran"], "the running attempt was queued again and ran twice"


def test_a_scheduler_whose_clock_runs_a_minute_ahead_leaves_a_live_schedulers_runs_alone(
    pg_url: str, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    with in_process_zonda(pg_url, tmp_path, heartbeat_interval=0.5, scheduler_lease_seconds=1.5) as zonda:
        zonda.tenant("team-a", SOURCE.format(marks=str(marks)))
        first = zonda.start_scheduler(workers=1)
        run_id = zonda.trigger("team-a/stalled")
        zonda.wait_until(marks.exists, timeout=15)
        zonda.start_scheduler(workers=1, clock=lambda: utc_now() + timedelta(minutes=1))
        owners = set()
        until = time.monotonic() + 2.5  # five of its lease checks (every third of the lease)
        while time.monotonic() < until:
            with read_txn(zonda.engine) as conn:
                owners.add(conn.execute(select(db_runs.c.owner).where(db_runs.c.run_id == run_id)).scalar())
            time.sleep(0.05)
        (record,) = zonda.wait([run_id], timeout=30)
    assert owners == {first}, "the scheduler whose clock runs ahead took the run of a live one"
    assert record.state == "success" and marks.read_text().splitlines() == ["ran"]


def test_the_db_clock_corrects_this_machines_clock_on_postgresql_only(engine: Engine) -> None:
    clock = DbClock(lambda: utc_now() + timedelta(minutes=1))
    with read_txn(engine) as conn:
        clock.sync(conn)
    error = abs((clock() - utc_now()).total_seconds())
    if engine.dialect.name == "postgresql":
        assert error < 0.5, "PostgreSQL runs on this machine, whose clock is right"
    else:
        assert 59.5 < error < 60.5, "SQLite has no clock of its own"
