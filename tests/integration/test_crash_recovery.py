"""SIGKILL the server mid-run and start it again: every run finishes, no task is lost, none runs twice."""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.server import ZondaServer
from tests.services import drop_pg_database, fresh_pg_database

DAGS = Path(__file__).with_name("dags")
pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ZondaServer]:
    name = ""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'zonda.db'}"
    else:
        url, name = fresh_pg_database(request.getfixturevalue("pg_server"))
    dags = shutil.copytree(DAGS, tmp_path / "dags")
    srv = ZondaServer(
        tmp_path / "home", dags, url, workers=4, env={"ZONDA_TEST_MARKS": str(tmp_path / "marks")}
    )
    yield srv
    srv.stop()
    if name:
        drop_pg_database(request.getfixturevalue("pg_server"), name)


def succeeded_tasks(server: ZondaServer, run_ids: list[str]) -> int:
    return sum(t["state"] == "success" for r in run_ids for t in server.run(r)["tasks"])


def test_kill_mid_run_then_restart(server: ZondaServer, tmp_path: Path) -> None:
    server.start(expect_dags=12)
    run_ids = [server.trigger("slow_chain", {"user_id": i}, key=f"user-{i}") for i in range(6)]
    server.wait_until(lambda: succeeded_tasks(server, run_ids) >= 20, 60, "some tasks done")
    server.kill()
    time.sleep(1.5)
    server.start(expect_dags=12)
    records = [server.wait_run(r, timeout=120) for r in run_ids]

    assert [r["state"] for r in records] == ["success"] * 6
    marks = tmp_path / "marks"
    for record in records:
        for task in record["tasks"]:
            lines = (marks / f"{record['run_id']}.{task['task_id']}").read_text().splitlines()
            assert len(lines) == 1, f"{task['task_id']} of {record['run_id']} ran {len(lines)} times"
    ticks = sorted(datetime.fromisoformat(r["logical_date"]) for r in _ticker_runs(server))
    gaps = {b - a for a, b in itertools.pairwise(ticks)}
    assert gaps == {timedelta(seconds=1)}, "the schedule skipped or repeated a second across the restart"


def _ticker_runs(server: ZondaServer) -> list[dict[str, str]]:
    runs: list[dict[str, str]] = server.client.get(
        "/api/v1/runs", params={"dag_id": "default/ticker", "limit": 500}
    ).json()["runs"]
    return runs
