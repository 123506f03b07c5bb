"""Tenant quotas and tenant pools, enforced by real schedulers with real local worker processes, on
SQLite and PostgreSQL: a tenant at its quota waits, another tenant does not, also across 2 schedulers.

Concurrency is read from the start and end times the workers recorded for each task.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, insert, select, update

from tests.integration.in_process import Zonda, in_process_zonda
from zonda.api.schemas import ClearRequest, PoolSpec, RunRecord, TaskRecord
from zonda.core.states import RunState
from zonda.db import leases
from zonda.db.components import list_components
from zonda.db.engine import read_txn, write_txn
from zonda.db.leases import dags_held_elsewhere
from zonda.db.quotas import held_elsewhere
from zonda.db.schema import runs as runs_table
from zonda.db.schema import tenants
from zonda.db.tenants import create_tenant
from zonda.services import pools, runs

pytestmark = pytest.mark.slow

SOURCE = """
import time

from zonda import dag, task


@task
def nap(i: int) -> int:
    time.sleep(0.4)
    return i


@task(pool="gpu")
def train(i: int) -> int:
    time.sleep(0.3)
    return i


@dag
def fan() -> None:
    nap.map(i=[0, 1, 2, 3, 4, 5])


@dag
def pair() -> None:
    nap.map(i=[0, 1])


@dag
def gpu_fan() -> None:
    train.map(i=[0, 1, 2])


@dag(max_active_runs=1)
def one_at_a_time() -> None:
    nap.map(i=[0, 1])


@dag(max_active_tasks=2)
def two_tasks_at_a_time() -> None:
    nap.map(i=[0, 1, 2, 3])
"""


def peak(tasks: list[TaskRecord]) -> int:
    """The most tasks that ran at the same moment, from their recorded start and end times."""
    edges = sorted(
        [(t.started_at, 1) for t in tasks if t.started_at] + [(t.ended_at, -1) for t in tasks if t.ended_at]
    )
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def schedulers(engine: Engine) -> list[str]:
    with read_txn(engine) as conn:
        return [c.id for c in list_components(conn, "scheduler")]


def tasks_of(records: list[RunRecord]) -> list[TaskRecord]:
    return [t for r in records for t in r.tasks]


def add_runs(conn: Connection, now: datetime, rows: list[tuple[str, str, str, str | None]]) -> None:
    """Store runs as (run id, DAG id, state, owner), created now, with leases that run out now."""
    for run_id, dag_id, state, owner in rows:
        conn.execute(
            insert(runs_table).values(
                run_id=run_id,
                tenant_id=dag_id.split("/")[0],
                dag_id=dag_id,
                version=1,
                state=state,
                params={},
                trigger="api",
                created_at=now,
                owner=owner,
                lease_until=now,
            )
        )


@pytest.fixture
def zonda(db_url: str, tmp_path: Path) -> Iterator[Zonda]:
    with in_process_zonda(db_url, tmp_path) as z:
        yield z


def test_a_tenant_at_max_running_tasks_waits_and_another_tenant_does_not(zonda: Zonda) -> None:
    zonda.tenant("team-a", SOURCE, max_running_tasks=2)
    zonda.tenant("team-b", SOURCE)
    zonda.start_scheduler(workers=6)
    zonda.wait([zonda.trigger("team-b/fan")])
    a_runs = [zonda.trigger("team-a/fan") for _ in range(2)]
    b_run = zonda.trigger("team-b/fan")

    a_tasks = tasks_of(zonda.wait(a_runs))
    b_tasks = tasks_of(zonda.wait([b_run]))
    assert peak(a_tasks) == 2, "team-a ran more (or fewer) tasks at once than its quota of 2"
    assert peak(b_tasks) >= 3, "team-b was held to team-a's quota"
    a_last_start = max(t.started_at for t in a_tasks if t.started_at)
    assert all(t.started_at and t.started_at < a_last_start for t in b_tasks), "team-b waited for team-a"


def test_a_tenant_at_max_active_runs_keeps_its_next_run_queued(zonda: Zonda) -> None:
    zonda.tenant("team-a", SOURCE, max_active_runs=1)
    zonda.tenant("team-b", SOURCE)
    zonda.start_scheduler(workers=4)
    first, second = zonda.trigger("team-a/pair"), zonda.trigger("team-a/pair")
    b_run = zonda.trigger("team-b/pair")
    time.sleep(0.2)
    assert runs.get_run(zonda.svc, second).state == RunState.QUEUED.value

    one, two = zonda.wait([first, second])
    (b,) = zonda.wait([b_run])
    assert one.ended_at and two.started_at and b.started_at and b.ended_at
    assert two.started_at >= one.ended_at, "team-a's second run started while its first was active"
    assert b.started_at < one.ended_at, "team-b's run waited for team-a's"


def test_pools_of_the_same_name_in_two_tenants_are_independent(zonda: Zonda) -> None:
    zonda.tenant("team-a", SOURCE)
    zonda.tenant("team-b", SOURCE)
    zonda.tenant("team-c", SOURCE)
    pools.set_pool(zonda.svc, "team-a", "gpu", PoolSpec(slots=1))
    pools.set_pool(zonda.svc, "team-b", "gpu", PoolSpec(slots=3))
    zonda.start_scheduler(workers=6)
    a_run, b_run = zonda.trigger("team-a/gpu_fan"), zonda.trigger("team-b/gpu_fan")
    c_run = zonda.trigger("team-c/gpu_fan")

    assert peak(tasks_of(zonda.wait([a_run]))) == 1
    assert peak(tasks_of(zonda.wait([b_run]))) >= 2
    deadline = time.monotonic() + 30
    while not RunState(runs.get_run(zonda.svc, c_run).state).finished and time.monotonic() < deadline:
        time.sleep(0.05)
    c = runs.get_run(zonda.svc, c_run)
    assert c.state == "failed"
    assert all("pool 'gpu' of tenant 'team-c' does not exist" in (t.error or "") for t in c.tasks)


def test_the_quota_holds_across_two_schedulers(zonda: Zonda) -> None:
    """The second scheduler hears the wake-ups first, while the first one holds team-a's runs."""
    zonda.tenant("team-a", SOURCE, max_running_tasks=2)
    zonda.tenant("team-b", SOURCE)
    zonda.start_scheduler(workers=4, listen=False)
    a_runs = [zonda.trigger("team-a/fan") for _ in range(2)]
    zonda.wait_until(lambda: runs.get_run(zonda.svc, a_runs[1]).state == RunState.RUNNING.value)
    zonda.start_scheduler(workers=4)
    zonda.wait_until(lambda: len(schedulers(zonda.engine)) == 2)
    a_runs += [zonda.trigger("team-a/fan") for _ in range(2)]
    b_runs = [zonda.trigger("team-b/fan") for _ in range(2)]

    a_tasks = tasks_of(zonda.wait(a_runs))
    b_tasks = tasks_of(zonda.wait(b_runs))
    assert peak(a_tasks) == 2, "team-a ran more tasks at once than its quota across the two schedulers"
    a_last_start = max(t.started_at for t in a_tasks if t.started_at)
    assert all(t.started_at and t.started_at < a_last_start for t in b_tasks), "team-b waited for team-a"


def test_a_dags_max_active_runs_and_max_active_tasks_hold_across_two_schedulers(zonda: Zonda) -> None:
    """Each scheduler counts what it holds: two of them must not each run a DAG to its limits."""
    zonda.tenant("team-a", SOURCE)
    zonda.start_scheduler(workers=4, listen=False)
    first = zonda.trigger("team-a/one_at_a_time")
    zonda.wait_until(lambda: runs.get_run(zonda.svc, first).state == RunState.RUNNING.value)
    zonda.start_scheduler(workers=4)
    zonda.wait_until(lambda: len(schedulers(zonda.engine)) == 2)
    one_runs = [first] + [zonda.trigger("team-a/one_at_a_time") for _ in range(3)]
    two_runs = [zonda.trigger("team-a/two_tasks_at_a_time") for _ in range(3)]

    records = sorted(zonda.wait(one_runs), key=lambda r: r.started_at or r.created_at)
    for earlier, later in itertools.pairwise(records):
        assert earlier.ended_at and later.started_at
        assert later.started_at >= earlier.ended_at, "two runs of a max_active_runs=1 DAG were active at once"
    assert peak(tasks_of(zonda.wait(two_runs))) == 2, "a max_active_tasks=2 DAG ran more tasks at once"


def test_a_run_cleared_while_its_dag_has_runs_under_way_goes_to_the_scheduler_serving_the_dag(
    zonda: Zonda,
) -> None:
    """The second scheduler hears of the clear first, while the first one serves the DAG."""
    zonda.tenant("team-a", SOURCE)
    zonda.start_scheduler(workers=4, listen=False)
    (done,) = zonda.wait([zonda.trigger("team-a/two_tasks_at_a_time")])
    under_way = [zonda.trigger("team-a/two_tasks_at_a_time") for _ in range(3)]
    zonda.wait_until(
        lambda: all(runs.get_run(zonda.svc, r).state == RunState.RUNNING.value for r in under_way)
    )
    zonda.start_scheduler(workers=4)
    zonda.wait_until(lambda: len(schedulers(zonda.engine)) == 2)
    runs.clear_run(zonda.svc, done.run_id, ClearRequest(task_id="nap"))

    zonda.wait_until(lambda: not runs.get_run(zonda.svc, done.run_id).pending_commands)
    records = zonda.wait([*under_way, done.run_id])
    with read_txn(zonda.engine) as conn:
        holders = {leases.owner_of(conn, r.run_id) for r in records}
    assert len(holders) == 1, "the cleared run went to a scheduler other than the one serving its DAG"
    assert peak(tasks_of(records)) == 2, "the DAG ran more tasks at once than its max_active_tasks"


def test_a_cleared_run_waits_while_its_dag_is_at_max_active_runs(zonda: Zonda) -> None:
    zonda.tenant("team-a", SOURCE)
    zonda.start_scheduler(workers=4)
    (done,) = zonda.wait([zonda.trigger("team-a/one_at_a_time")])
    later = zonda.trigger("team-a/one_at_a_time")
    zonda.wait_until(lambda: runs.get_run(zonda.svc, later).state == RunState.RUNNING.value)
    runs.clear_run(zonda.svc, done.run_id, ClearRequest(task_id="nap"))

    zonda.wait_until(lambda: not runs.get_run(zonda.svc, done.run_id).pending_commands)
    cleared, other = zonda.wait([done.run_id, later])
    assert other.ended_at and all(t.started_at and t.started_at >= other.ended_at for t in cleared.tasks), (
        "the cleared run ran while another run of its max_active_runs=1 DAG was active"
    )


def test_held_elsewhere_sees_other_schedulers_active_runs_and_locked_tenants(engine: Engine) -> None:
    now = datetime.now(UTC)
    with write_txn(engine) as conn:
        for tenant in ("team-a", "team-b", "team-c"):
            create_tenant(conn, tenant, {"display_name": tenant, "dag_folders": []}, now)
        add_runs(conn, now, [("r1", "team-a/d", "running", "s2"), ("r2", "team-b/d", "running", "s1")])
        add_runs(conn, now, [("r3", "team-c/d", "success", "s2")])
    with write_txn(engine) as conn:
        assert held_elsewhere(conn, ["team-a", "team-b", "team-c"], "s1") == {"team-a"}
        assert held_elsewhere(conn, ["team-b"], "s2") == {"team-b"}
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as other:
        other.execute(select(tenants.c.tenant_id).where(tenants.c.tenant_id == "team-c").with_for_update())
        with write_txn(engine) as conn:
            assert held_elsewhere(conn, ["team-b", "team-c"], "s1", skip_locked=True) == {"team-c"}
        other.rollback()


def test_a_dag_whose_runs_another_scheduler_holds_is_left_to_it_and_claims_of_it_take_turns(
    engine: Engine,
) -> None:
    now = datetime.now(UTC)
    with write_txn(engine) as conn:
        create_tenant(conn, "team-a", {"display_name": "team-a", "dag_folders": []}, now)
        add_runs(
            conn,
            now,
            [
                ("r1", "team-a/held", "running", "s2"),
                ("r2", "team-a/mine", "running", "s1"),
                ("r3", "team-a/ended", "success", "s2"),
                ("r4", "team-a/queued", "queued", None),
            ],
        )
    every = ["team-a/held", "team-a/mine", "team-a/ended", "team-a/queued"]
    with write_txn(engine) as conn:
        assert dags_held_elsewhere(conn, every, "s1") == {"team-a/held"}
        assert dags_held_elsewhere(conn, every, "s2") == {"team-a/mine"}
    if engine.dialect.name != "postgresql":
        return  # SQLite's write transactions take turns anyway
    checked = threading.Event()
    seen: list[set[str]] = []

    def second_scheduler() -> None:
        with write_txn(engine) as conn:
            seen.append(dags_held_elsewhere(conn, ["team-a/queued"], "s2"))
        checked.set()

    with write_txn(engine) as conn:
        assert dags_held_elsewhere(conn, ["team-a/queued"], "s1") == set()
        thread = threading.Thread(target=second_scheduler, daemon=True)
        thread.start()
        assert not checked.wait(0.5), "the second scheduler did not wait for the first one's claim"
        conn.execute(
            update(runs_table).where(runs_table.c.run_id == "r4").values(owner="s1", state="running")
        )
    thread.join(10)
    assert seen == [{"team-a/queued"}], "the second scheduler saw the first one's claim"
