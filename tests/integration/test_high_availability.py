"""Two schedulers on one PostgreSQL DB: SIGKILL one mid-run and the other finishes its runs.

Each successful task runs exactly once (checked through the side effects the tasks record), and
a schedule firing every second neither repeats nor skips a time across the takeover.
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.integration.cluster import DAGS, Cluster, assert_each_task_ran_once, owners
from tests.services import drop_pg_database, fresh_pg_database
from zonda.db.engine import make_engine

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def cluster(pg_server: str, tmp_path: Path) -> Iterator[Cluster]:
    url, name = fresh_pg_database(pg_server)
    dags = shutil.copytree(DAGS, tmp_path / "dags")
    env = {"ZONDA_TEST_MARKS": str(tmp_path / "marks"), "ZONDA_WORKERS": "3"}
    c = Cluster(tmp_path / "home", dags, url, env=env)
    yield c
    c.stop()
    drop_pg_database(pg_server, name)


def test_survivor_takes_over_and_runs_each_task_once(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start(expect_dags=12, schedulers=2)
    run_ids = [cluster.trigger("slow_chain", {"user_id": i}, key=f"user-{i}") for i in range(6)]
    done = lambda: sum(t["state"] == "success" for r in run_ids for t in cluster.run(r)["tasks"])  # noqa: E731
    cluster.wait_until(lambda: done() >= 12, 60, "some tasks done")
    waiting = {r: sum(not t["started_at"] for t in cluster.run(r)["tasks"]) for r in run_ids}
    held = owners(cluster.db_url, [r for r, n in waiting.items() if n])
    work: dict[str, int] = {}
    for run_id, owner in held.items():
        if owner:
            work[owner] = work.get(owner, 0) + waiting[run_id]
    victim_owner = max(work, key=lambda o: work[o])  # the scheduler with the most tasks yet to start
    victim = cluster.process_of(victim_owner)
    victim_runs = [r for r, o in held.items() if o == victim_owner]
    killed_at = datetime.now(UTC)
    cluster.kill(victim)

    records = [cluster.wait_run(r, timeout=120) for r in run_ids]
    assert [r["state"] for r in records] == ["success"] * 6
    resumed = min(
        t["started_at"]
        for r in records
        if r["run_id"] in victim_runs
        for t in r["tasks"]
        if t["started_at"] and t["started_at"] > killed_at.isoformat().replace("+00:00", "Z")
    )
    takeover = datetime.fromisoformat(resumed.replace("Z", "+00:00")) - killed_at
    assert takeover <= timedelta(seconds=10), f"took {takeover} to take over"
    assert_each_task_ran_once(records, tmp_path / "marks")
    time.sleep(2)
    ticks = sorted(
        datetime.fromisoformat(r["logical_date"].replace("Z", "+00:00"))
        for r in cluster.client.get("/api/v1/runs", params={"dag_id": "default/ticker", "limit": 500}).json()[
            "runs"
        ]
    )
    assert {b - a for a, b in itertools.pairwise(ticks)} == {timedelta(seconds=1)}


def test_scheduler_survives_a_dropped_db_connection(cluster: Cluster) -> None:
    cluster.start(expect_dags=12, schedulers=1)
    run_ids = [cluster.trigger("slow_chain", {"user_id": i}) for i in range(3)]
    cluster.wait_until(
        lambda: any(t["state"] == "success" for t in cluster.run(run_ids[0])["tasks"]), 30, "start"
    )
    admin = make_engine(cluster.db_url.rsplit("/", 1)[0] + "/postgres")
    database = cluster.db_url.rsplit("/", 1)[1]
    for _ in range(3):
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"),
                {"db": database},
            )
            conn.commit()
        time.sleep(0.7)
    admin.dispose()
    records = [cluster.wait_run(r, timeout=90) for r in run_ids]
    assert [r["state"] for r in records] == ["success"] * 3
    assert all(p.poll() is None for p in cluster.procs.values()), "a process died on the dropped connection"
