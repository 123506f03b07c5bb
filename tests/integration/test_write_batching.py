"""What the scheduler writes at once and what it gathers: a real scheduler and local workers, SQLite and
PostgreSQL, with `scheduler_write_window` set far beyond the test's length.

Outcomes that nothing waits for wait for the window, so many share one transaction. Work to
dispatch, and a run's start and end, are written at once: the DAG below still runs in seconds,
and a client sees its run end as soon as it ends. (The scheduler's heartbeat, every
`heartbeat_interval`, also writes what has gathered; the test sets it as long as the window.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, event, select, text, update

from tests.integration.in_process import Zonda, in_process_zonda
from zonda.core.states import RunState
from zonda.db.engine import make_engine, read_txn, write_txn
from zonda.db.schema import runs as db_runs
from zonda.scheduler.persistence import Rows
from zonda.scheduler.writer import Batch, Lease, Writer
from zonda.services import runs

pytestmark = pytest.mark.slow

WINDOW_S = 60.0

SOURCE = """
import time

from zonda import dag, task


@task
def quick() -> int:
    return 1


@task
def slow() -> int:
    time.sleep(1.5)
    return 2


@task
def after(x: int) -> int:
    return x + 1


@dag
def lanes() -> None:
    quick()
    after(slow())
"""


@pytest.fixture
def zonda(db_url: str, tmp_path: Path) -> Iterator[Zonda]:
    # The scheduler's heartbeat writes whatever has gathered: keep it out of the test's few seconds.
    with in_process_zonda(
        db_url, tmp_path, scheduler_write_window=WINDOW_S, heartbeat_interval=WINDOW_S
    ) as z:
        yield z


def test_outcomes_wait_for_the_window_but_dispatches_and_run_ends_are_written_at_once(zonda: Zonda) -> None:
    zonda.tenant("team-a", SOURCE)
    zonda.start_scheduler(workers=2)
    run_id = zonda.trigger("team-a/lanes")
    began = time.monotonic()

    def state_of(task_id: str) -> str:
        return next(t.state for t in runs.get_run(zonda.svc, run_id).tasks if t.task_id == task_id)

    zonda.wait_until(lambda: runs.get_run(zonda.svc, run_id).state == RunState.RUNNING.value, timeout=10)
    time.sleep(0.8)  # `quick` ended long ago; `slow` still runs
    assert state_of("quick") != "success", "an outcome nothing waits for was written before the window"

    (record,) = zonda.wait([run_id], timeout=20)
    assert time.monotonic() - began < WINDOW_S / 2, "the run's end waited for the write window"
    assert {t.task_id: t.state for t in record.tasks} == {
        "quick": "success",
        "slow": "success",
        "after": "success",
    }


LEASES_SOURCE = """
import time

from zonda import dag, task


@task
def wait() -> int:
    time.sleep(5)
    return 1


@task
def hop(x: int) -> int:
    time.sleep(0.05)
    return x + 1


@task
def quick() -> int:
    return 1


@dag
def idle() -> None:
    quick()
    wait()


@dag
def busy() -> None:
    x = hop(0)
    for _ in range(30):
        x = hop(x)
"""
HEARTBEAT_S = 0.5


def _leases(zonda: Zonda, run_ids: list[str]) -> dict[str, datetime]:
    with read_txn(zonda.engine) as conn:
        rows = conn.execute(
            select(db_runs.c.run_id, db_runs.c.lease_until).where(db_runs.c.run_id.in_(run_ids))
        )
        return {row.run_id: row.lease_until for row in rows}


def _renewals_while(zonda: Zonda, run_ids: list[str], running: Callable[[], bool]) -> dict[str, int]:
    """How many times each run's lease was extended while `running()` holds (sampled every 10 ms)."""
    last = _leases(zonda, run_ids)
    changes = dict.fromkeys(run_ids, 0)
    while running():
        time.sleep(0.01)
        now = _leases(zonda, run_ids)
        for run_id in run_ids:
            changes[run_id] += now[run_id] != last[run_id]
        last = now
    return changes


def test_a_batch_renews_the_leases_of_the_runs_it_writes_and_the_heartbeat_renews_all(
    db_url: str, tmp_path: Path
) -> None:
    # Renewing every held run with every batch cost an UPDATE of all of them per commit.
    with in_process_zonda(
        db_url, tmp_path, heartbeat_interval=HEARTBEAT_S, scheduler_write_window=0.0
    ) as zonda:
        zonda.tenant("team-a", LEASES_SOURCE)
        zonda.start_scheduler(workers=2)
        idle = zonda.trigger("team-a/idle")
        zonda.wait_until(lambda: runs.get_run(zonda.svc, idle).state == RunState.RUNNING.value, timeout=10)
        busy = zonda.trigger("team-a/busy")

        def busy_runs() -> bool:
            return runs.get_run(zonda.svc, busy).state not in ("success", "failed")

        began = time.monotonic()
        changes = _renewals_while(zonda, [idle, busy], busy_runs)
        took = time.monotonic() - began
        (record,) = zonda.wait([busy], timeout=30)
        assert record.state == "success"

    heartbeats = int(took / HEARTBEAT_S) + 3  # and the idle run's own writes (its tasks' start and end)
    assert changes[busy] > heartbeats, (
        f"the busy run's batches did not renew its lease: {changes}, {took:.1f} s"
    )
    assert 1 <= changes[idle] <= heartbeats, f"the idle run's lease followed other runs' batches: {changes}"


def test_leases_are_renewed_every_third_of_the_lease_without_writing_what_waits_for_the_window(
    db_url: str, tmp_path: Path
) -> None:
    with in_process_zonda(
        db_url,
        tmp_path,
        scheduler_write_window=WINDOW_S,
        heartbeat_interval=WINDOW_S,
        scheduler_lease_seconds=3.0,
    ) as zonda:
        zonda.tenant("team-a", LEASES_SOURCE)
        zonda.start_scheduler(workers=2)
        run_id = zonda.trigger("team-a/idle")
        zonda.wait_until(lambda: runs.get_run(zonda.svc, run_id).state == RunState.RUNNING.value, timeout=10)
        first = _leases(zonda, [run_id])[run_id]
        time.sleep(1.3)  # more than a third of the lease; `wait` still runs
        tasks = {t.task_id: t.state for t in runs.get_run(zonda.svc, run_id).tasks}
        assert _leases(zonda, [run_id])[run_id] > first, (
            "the run's lease was not renewed within a third of it"
        )
        assert tasks["quick"] != "success", "renewing the lease wrote an outcome that waits for the window"
        (record,) = zonda.wait([run_id], timeout=20)
        assert record.state == "success"


def test_a_batch_writes_nothing_of_a_run_another_scheduler_holds_and_says_it_lost_it(
    db_url: str, tmp_path: Path
) -> None:
    """Fencing (ADR 0005). On PostgreSQL the writer first sends the batch and its lease renewal
    together, assuming every lease still held; finding one taken, it writes the batch again
    renewal first, the rows of the run it lost left out."""
    with in_process_zonda(db_url, tmp_path) as zonda:
        zonda.tenant("team-a", LEASES_SOURCE)
        ours, theirs = zonda.trigger("team-a/idle"), zonda.trigger("team-a/idle")
        until = datetime.now(UTC) + timedelta(minutes=5)
        with write_txn(zonda.engine) as conn:
            for run_id, owner in ((ours, "me"), (theirs, "them")):
                conn.execute(
                    update(db_runs).where(db_runs.c.run_id == run_id).values(owner=owner, lease_until=until)
                )
        renewed_to = until + timedelta(minutes=1)
        seen: list[str] = []  # what SQLAlchemy sends: a batch sent at once renews past it, on the driver
        event.listen(zonda.engine, "before_cursor_execute", lambda _c, _cur, sql, *_: seen.append(sql))
        writer = Writer(zonda.engine)
        try:
            writer.submit(Batch(Rows(), epoch=0, lease=Lease("me", [ours], until)))
            assert len(writer.wait_idle(timeout=30)) == 1, "the batch was not committed"
            renewals = [sql for sql in seen if sql.startswith("UPDATE runs SET lease_until")]
            at_once = zonda.engine.dialect.name == "postgresql"
            assert len(renewals) == (0 if at_once else 1), "a batch of runs all held was not sent at once"
            failed = [
                {"b_run": run_id, "b_state": "failed", "b_ended": renewed_to, "b_started": None}
                for run_id in (ours, theirs)
            ]
            batch = Batch(Rows(run_updates=failed), epoch=0, lease=Lease("me", [ours, theirs], renewed_to))
            writer.submit(batch)
            assert len(writer.wait_idle(timeout=30)) == 1, "the batch was not committed"
        finally:
            writer.stop()
        assert batch.lost_runs == {theirs}
        assert runs.get_run(zonda.svc, ours).state == "failed"
        assert runs.get_run(zonda.svc, theirs).state == "queued", "wrote a run another scheduler holds"
        assert _leases(zonda, [ours, theirs]) == {ours: renewed_to, theirs: until}


def test_the_writer_keeps_its_connection_and_takes_a_new_one_when_the_db_ends_it(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No pool checkout, hence no liveness ping, per batch; a connection the DB ended (a restart, a
    failover, an admin's `pg_terminate_backend`) is replaced at once, without a failed batch's wait."""
    engine = make_engine(pg_url)
    checkouts: list[object] = []
    event.listen(engine, "checkout", lambda *args: checkouts.append(args))
    writer = Writer(engine)
    backends: list[int] = []

    def commit_one() -> None:
        writer.submit(
            Batch(
                Rows(),
                epoch=0,
                extra=lambda c: backends.append(c.execute(text("SELECT pg_backend_pid()")).scalar_one()),
            )
        )
        assert len(writer.wait_idle(timeout=30)) == 1, "the batch was not committed"

    try:
        commit_one()
        commit_one()
        assert backends[0] == backends[1]
        assert len(checkouts) == 1, "each batch took (and pinged) a pooled connection"
        with engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backends[0]})
            admin.commit()
        with caplog.at_level(logging.INFO, logger="zonda.scheduler.writer"):
            commit_one()
        assert backends[2] != backends[0]
        said = [(r.levelno, r.getMessage().split(" (")[0]) for r in caplog.records]
        assert said == [(logging.INFO, "the DB closed the writer's connection")], said
    finally:
        writer.stop()
        engine.dispose()


def test_a_batch_whose_connection_the_db_ends_in_its_pipeline_is_committed_on_a_new_one(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The task instance updates of a batch go to PostgreSQL in one pipeline; the connection ending
    there surfaces only at the pipeline's end, and must still count as the DB ending it."""
    engine = make_engine(pg_url)
    writer = Writer(engine)
    backends: list[int] = []
    ended: list[int] = []

    def end_it_once(conn: Connection, _cursor: object, statement: str, *_: object) -> None:
        if statement.startswith("UPDATE task_instances") and not ended:
            ended.append(conn.connection.driver_connection.info.backend_pid)
            with engine.connect() as admin:
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": ended[0]})
                admin.commit()

    event.listen(engine, "before_cursor_execute", end_it_once)
    update = {"b_run": "no-such-run", "b_task": "t", "b_map": -1, "state": "success", "try_number": 1}
    update |= {"max_tries": 1, "error": None, "output_length": None}
    update |= dict.fromkeys(["queued_at", "started_at", "ended_at", "next_try_at"])
    update |= dict.fromkeys(["output_serializer", "output_size", "output_data", "output_uri"])
    try:
        writer.submit(Batch(Rows(), epoch=0))
        assert len(writer.wait_idle(timeout=30)) == 1, "the first batch (which opens the connection) failed"
        with caplog.at_level(logging.INFO, logger="zonda.scheduler.writer"):
            writer.submit(
                Batch(
                    Rows(updates=[update]),
                    epoch=0,
                    extra=lambda c: backends.append(c.execute(text("SELECT pg_backend_pid()")).scalar_one()),
                )
            )
            assert len(writer.wait_idle(timeout=30)) == 1, "the batch was not committed"
    finally:
        writer.stop()
        engine.dispose()
    assert ended and backends and backends[0] != ended[0], "committed on the connection the DB ended"
    said = [
        (r.levelno, r.getMessage().split(" (")[0])
        for r in caplog.records
        if r.name == "zonda.scheduler.writer"
    ]
    assert said == [(logging.INFO, "the DB closed the writer's connection")], said
