"""The latency dashboard's and the system page's API on a real metadata DB (SQLite and PostgreSQL).

Runs are stored with known times (a mapped task, a retry, a failed run, a run in flight), so every
figure is checked exactly; each caller sees only the tenants it reads, and another tenant's DAG or
tenant answers 404. A scheduler whose heartbeat stopped makes the system "degraded".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, insert, update

from tests.identity import user_token
from tests.integration.dag_seed import load_dags, seed_dag
from zonda.api.app import create_app
from zonda.api.routes.deps import SESSION_COOKIE
from zonda.core.permissions import Role
from zonda.db.components import Component, heartbeat, register
from zonda.db.engine import write_txn
from zonda.db.schema import runs, task_attempts, task_instances
from zonda.db.workers import Worker, record_heartbeats
from zonda.scheduler.wakeup import NullWaker
from zonda.settings import Settings

SOURCE = """
from zonda import dag, task


@task
def extract() -> list[int]:
    return [1, 2]


@task
def train(n: int) -> int:
    return n


@task
def report(scores: list[int]) -> None:
    print(scores)


@dag
def etl() -> None:
    report(train.map(n=extract()))
"""

T = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
"""The start of the window every test asks about (a whole hour: buckets start on it)."""
WINDOW = {"since": "2030-01-07T12:00:00Z", "until": "2030-01-07T13:00:00Z"}


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


@dataclass
class Api:
    client: TestClient
    engine: Engine
    tokens: dict[str, str]

    def get(self, who: str, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers={"Authorization": f"Bearer {self.tokens[who]}"})


@pytest.fixture
def api(db_url: str, engine: Engine, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(home=tmp_path / "home", db_url=db_url, heartbeat_interval=2.0)
    tokens = {
        "alice": user_token(engine, settings, "alice", {"team-a": Role.VIEWER}),
        "bob": user_token(engine, settings, "bob", {"team-b": Role.VIEWER}),
        "root": user_token(engine, settings, "root", superuser=True),
    }
    for tenant in ("team-a", "team-b"):
        for dag in load_dags(SOURCE, f"/dags/{tenant}/etl.py").values():
            seed_dag(engine, dag, source=SOURCE, tenant=tenant)
    _seed_runs(engine)
    with TestClient(create_app(settings, engine=engine, waker=NullWaker())) as client:
        yield Api(client, engine, tokens)


def _seed_runs(engine: Engine) -> None:
    """team-a: r1 succeeds (train mapped x2, train[1] retried), r2 fails at once, r4 is running;
    team-b: r3 succeeds. Times in seconds after T."""
    with write_txn(engine) as conn:
        _run(conn, "r1", "team-a", "success", created=0.0, started=0.005, ended=3.6)
        _ti(conn, "r1", "extract", -1, "success", 1, (0.010, 0.012, 1.0))
        _ti(conn, "r1", "train", 0, "success", 1, (1.002, 1.005, 2.0))
        _ti(conn, "r1", "train", 1, "success", 2, (1.003, 1.007, 1.5), (2.5, 2.502, 3.0))
        _ti(conn, "r1", "report", -1, "success", 1, (3.004, 3.010, 3.5))
        _run(conn, "r2", "team-a", "failed", created=60.0, started=60.005, ended=61.5)
        _ti(conn, "r2", "extract", -1, "failed", 1, (60.010, 60.020, 61.0))
        _ti(conn, "r2", "train", -1, "upstream_failed", 0, ended=61.0)
        _ti(conn, "r2", "report", -1, "upstream_failed", 0, ended=61.0)
        _run(conn, "r3", "team-b", "success", created=30.0, started=30.001, ended=31.0)
        _ti(conn, "r3", "extract", -1, "success", 1, (30.100, 30.200, 31.0))
        _run(conn, "r4", "team-a", "running", created=120.0, started=120.001, ended=None)
        _ti(conn, "r4", "extract", -1, "running", 1, (120.5, 120.505, None))
        _ti(conn, "r4", "train", -1, "pending", 0)
        _ti(conn, "r4", "report", -1, "pending", 0)
        _run(conn, "r5", "team-a", "success", created=-7200.0, started=-7199.0, ended=-7000.0)
        _ti(conn, "r5", "extract", -1, "success", 1, (-7198.0, -7197.0, -7000.0))


def _run(
    conn: Any, run_id: str, tenant: str, state: str, *, created: float, started: float, ended: float | None
) -> None:
    conn.execute(
        insert(runs).values(
            run_id=run_id,
            tenant_id=tenant,
            dag_id=f"{tenant}/etl",
            version=1,
            state=state,
            params={},
            trigger="manual",
            created_at=at(created),
            started_at=at(started),
            ended_at=at(ended) if ended is not None else None,
        )
    )


def _ti(
    conn: Any,
    run_id: str,
    task_id: str,
    map_index: int,
    state: str,
    try_number: int,
    *attempts: tuple[float, float, float | None],
    ended: float | None = None,
) -> None:
    """A task instance whose attempts are (queued, started, ended); the row holds the last one."""
    queued, started, last_end = attempts[-1] if attempts else (None, None, ended)
    conn.execute(
        insert(task_instances).values(
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            state=state,
            try_number=try_number,
            max_tries=2,
            queued_at=at(queued) if queued is not None else None,
            started_at=at(started) if started is not None else None,
            ended_at=at(last_end) if last_end is not None else None,
        )
    )
    for number, (q, s, e) in enumerate(attempts, start=1):
        if e is not None:
            conn.execute(
                insert(task_attempts).values(
                    run_id=run_id,
                    task_id=task_id,
                    map_index=map_index,
                    try_number=number,
                    state=state if number == len(attempts) else "up_for_retry",
                    queued_at=at(q),
                    started_at=at(s),
                    ended_at=at(e),
                )
            )


TEAM_A = {
    "transition_ms": {"count": 3, "p50": 7.0, "p95": 9.7, "p99": 9.94, "max": 10.0},
    "queue_wait_ms": {"count": 7, "p50": 4.0, "p95": 8.8, "p99": 9.76, "max": 10.0},
    "run_duration_ms": {"count": 2, "p50": 2550.0, "p95": 3495.0, "p99": 3579.0, "max": 3600.0},
    "run_execution_ms": {"count": 2, "p50": 2545.0, "p95": 3490.0, "p99": 3574.0, "max": 3595.0},
    "runs_ended": 2,
    "runs_failed": 1,
    "failure_rate": 0.5,
    "tasks_ended": 5,
    "tasks_per_minute": 0.083333,
    "runs_per_hour": 2.0,
}
"""r1: transitions 5 (train[0]), 7 (train[1] from its first attempt), 10 ms (report, after train[1]'s
retry); queue waits 2, 3, 4, 2, 6 ms; r2: 10 ms; r4: 5 ms. r5 ended before the window."""


def test_a_tenants_figures_match_its_runs_exactly(api: Api) -> None:
    response = api.get("alice", "/api/v1/metrics/latency", tenant_id="team-a", **WINDOW)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["bucket"], body["bucket_seconds"], body["tenant_id"], body["dag_id"]) == (
        "1m",
        60,
        "team-a",
        None,
    )
    assert body["total"] == TEAM_A
    assert [t["tenant_id"] for t in body["tenants"]] == ["team-a"]
    assert body["tenants"][0]["total"] == TEAM_A
    assert [(d["dag_id"], d["total"]) for d in body["dags"]] == [("team-a/etl", TEAM_A)]
    series = body["series"]
    assert len(series) == 60
    assert (series[0]["start"], series[0]["seconds"]) == ("2030-01-07T12:00:00.000000Z", 60.0)
    first, second, third = series[0], series[1], series[2]
    assert first["transition_ms"] == TEAM_A["transition_ms"]
    assert (first["runs_ended"], first["runs_failed"], first["tasks_ended"]) == (1, 0, 4)
    assert first["run_duration_ms"]["p50"] == 3600.0
    assert first["tasks_per_minute"] == 4.0
    assert first["runs_per_hour"] == 60.0
    assert (second["runs_ended"], second["runs_failed"], second["failure_rate"]) == (1, 1, 1.0)
    assert second["queue_wait_ms"] == {"count": 1, "p50": 10.0, "p95": 10.0, "p99": 10.0, "max": 10.0}
    assert third["queue_wait_ms"]["p50"] == 5.0
    assert (third["runs_ended"], third["failure_rate"], third["transition_ms"]["p50"]) == (0, None, None)


def test_a_dags_series_and_a_coarser_bucket(api: Api) -> None:
    body = api.get("alice", "/api/v1/metrics/latency", dag_id="team-a/etl", bucket="1h", **WINDOW).json()
    assert (body["bucket"], body["dag_id"], len(body["series"])) == ("1h", "team-a/etl", 1)
    reduced = {k: v for k, v in body["series"][0].items() if k not in ("start", "seconds")}
    assert reduced == TEAM_A


def test_each_caller_sees_only_the_tenants_it_reads(api: Api) -> None:
    mine = api.get("bob", "/api/v1/metrics/latency", **WINDOW).json()
    assert [t["tenant_id"] for t in mine["tenants"]] == ["team-b"]
    assert [d["dag_id"] for d in mine["dags"]] == ["team-b/etl"]
    assert mine["total"]["queue_wait_ms"]["max"] == 100.0
    assert mine["total"]["runs_ended"] == 1
    for params in ({"tenant_id": "team-a"}, {"dag_id": "team-a/etl"}):
        response = api.get("bob", "/api/v1/metrics/latency", **params, **WINDOW)
        assert response.status_code == 404, response.text
        assert "team-a" in response.json()["error"]["message"]
    everything = api.get("root", "/api/v1/metrics/latency", **WINDOW).json()
    assert [t["tenant_id"] for t in everything["tenants"]] == ["team-a", "team-b"]
    assert everything["tenants"][0]["total"] == TEAM_A
    assert everything["total"]["runs_ended"] == 3
    assert everything["total"]["queue_wait_ms"]["count"] == 8


def test_bad_windows_and_buckets_say_what_to_change(api: Api) -> None:
    week = {"since": "2030-01-01T00:00:00Z", "until": "2030-01-08T00:00:00Z"}
    response = api.get("alice", "/api/v1/metrics/latency", bucket="1m", **week)
    assert response.status_code == 422
    assert "larger bucket" in response.json()["error"]["message"]
    response = api.get(
        "alice", "/api/v1/metrics/latency", since="2030-01-08T00:00:00Z", until="2030-01-01T00:00:00Z"
    )
    assert response.status_code == 422
    assert api.get("alice", "/api/v1/metrics/latency", bucket="7m").status_code == 422
    assert api.get("alice", "/api/v1/metrics/latency", dag_id="team-a/nope", **WINDOW).status_code == 404
    assert api.get("alice", "/api/v1/metrics/latency", dag_id="", **WINDOW).status_code == 404
    response = api.get("alice", "/api/v1/metrics/latency", until="0001-01-01T00:00:00Z")
    assert response.status_code == 422
    assert "give since too" in response.json()["error"]["message"]
    default = api.get("alice", "/api/v1/metrics/latency").json()
    assert (default["bucket"], len(default["series"])) in {("1h", 24), ("1h", 25)}


def test_system_is_ok_with_a_live_scheduler_and_lists_each_tenants_load(api: Api) -> None:
    now = datetime.now(UTC)
    with write_txn(api.engine) as conn:
        register(conn, Component("scheduler-live", "scheduler", "host-1", 11, now, now))
        record_heartbeats(
            conn, [Worker("worker-1", "host-2", ["default"], 4, now, now, [], cpus=2, resting=1)]
        )
        conn.execute(update(runs).where(runs.c.run_id == "r4").values(owner="scheduler-live"))
    body = api.get("alice", "/api/v1/metrics/system").json()
    assert (body["status"], body["problems"]) == ("ok", [])
    assert body["database"]["reachable"] is True
    assert [(s["id"], s["alive"], s["runs"]) for s in body["schedulers"]] == [("scheduler-live", True, 1)]
    assert api.get("bob", "/api/v1/metrics/system").json()["schedulers"][0]["runs"] == 0, "team-a's run"
    assert [(w["worker_id"], w["cpus"]) for w in body["workers"]] == [("worker-1", 2)]
    api.client.cookies.set(SESSION_COOKIE, api.tokens["alice"])
    page = api.client.get("/system").text
    assert "<td>4</td><td>2</td><td>1</td>" in page, "the System page: 4 slots on 2 CPUs, 1 resting"
    assert '<td class="runs-held">1</td>' in page
    assert body["tenants"] == [
        {
            "tenant_id": "team-a",
            "scheduled_tasks": 0,
            "queued_tasks": 0,
            "running_tasks": 1,
            "queued_runs": 0,
            "running_runs": 1,
            "waiting_by_queue": {},
        }
    ]
    assert api.get("bob", "/api/v1/metrics/system").json()["tenants"] == []
    assert [t["tenant_id"] for t in api.get("root", "/api/v1/metrics/system").json()["tenants"]] == ["team-a"]


def test_a_stopped_scheduler_heartbeat_makes_the_system_degraded(api: Api) -> None:
    stale = datetime.now(UTC) - timedelta(seconds=60)
    with write_txn(api.engine) as conn:
        register(conn, Component("scheduler-gone", "scheduler", "host-1", 12, stale, stale))
    body = api.get("bob", "/api/v1/metrics/system").json()
    assert body["status"] == "degraded"
    assert body["schedulers"][0]["alive"] is False
    assert body["schedulers"][0]["heartbeat_age_seconds"] >= 60
    assert body["problems"][0].startswith("no scheduler is running")
    assert "scheduler-gone" in body["problems"][1]
    now = datetime.now(UTC)
    with write_txn(api.engine) as conn:
        register(conn, Component("scheduler-live", "scheduler", "host-2", 13, now, now))
    body = api.get("bob", "/api/v1/metrics/system").json()
    assert body["status"] == "degraded"
    assert len(body["problems"]) == 1
    assert "scheduler-gone" in body["problems"][0]


def test_tasks_waiting_per_broker_queue_add_up_over_live_schedulers_for_visible_tenants(api: Api) -> None:
    now = datetime.now(UTC)
    stale = now - timedelta(seconds=60)
    with write_txn(api.engine) as conn:
        register(conn, Component("scheduler-1", "scheduler", "host-1", 11, now, now))
        register(conn, Component("scheduler-2", "scheduler", "host-2", 12, now, now))
        register(conn, Component("scheduler-gone", "scheduler", "host-3", 13, stale, stale))
        heartbeat(conn, "scheduler-1", now, [{"tenant": "team-a", "queue": "gpu", "tasks": 3}])
        heartbeat(conn, "scheduler-2", now, [{"tenant": "team-a", "queue": "gpu", "tasks": 2}])
        heartbeat(conn, "scheduler-gone", stale, [{"tenant": "team-a", "queue": "gpu", "tasks": 100}])
    [load] = api.get("alice", "/api/v1/metrics/system").json()["tenants"]
    assert load["waiting_by_queue"] == {"gpu": 5}, "a dead scheduler's last count does not count"
    api.client.cookies.set(SESSION_COOKIE, api.tokens["alice"])
    assert "<td>gpu: 5</td>" in api.client.get("/system").text, "the System page shows it too"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(api.get("alice", "/metrics").text)
        for s in family.samples
    }
    assert samples[("zonda_queue_waiting_tasks", (("queue", "gpu"), ("tenant", "team-a")))] == 5.0
    assert not any(name == "zonda_queue_waiting_tasks" for name, _ in _samples(api, "bob"))


def test_prometheus_metrics_show_liveness_load_and_recent_latency_of_visible_tenants(api: Api) -> None:
    now = datetime.now(UTC)
    ago = (now - T).total_seconds() - 60  # a run that ended a minute ago, inside the 5-minute window
    with write_txn(api.engine) as conn:
        register(conn, Component("scheduler-live", "scheduler", "host-1", 11, now, now))
        record_heartbeats(
            conn, [Worker("worker-1", "host-2", ["default"], 4, now, now, [], cpus=2, resting=1)]
        )
        _run(conn, "r6", "team-a", "success", created=ago, started=ago + 0.001, ended=ago + 1.0)
        _ti(conn, "r6", "extract", -1, "success", 1, (ago + 0.01, ago + 0.02, ago + 0.5))
        _ti(conn, "r6", "train", -1, "success", 1, (ago + 0.505, ago + 0.51, ago + 0.9))
    response = api.get("alice", "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples[("zonda_status_ok", ())] == 1.0
    assert (
        samples[("zonda_scheduler_alive", (("hostname", "host-1"), ("scheduler", "scheduler-live")))] == 1.0
    )
    assert samples[("zonda_worker_slots", (("worker", "worker-1"),))] == 4.0
    assert samples[("zonda_worker_cpus", (("worker", "worker-1"),))] == 2.0
    assert samples[("zonda_worker_resting_slots", (("worker", "worker-1"),))] == 1.0
    assert samples[("zonda_tasks", (("state", "running"), ("tenant", "team-a")))] == 1.0
    assert samples[("zonda_runs", (("state", "running"), ("tenant", "team-a")))] == 1.0
    transition = samples[("zonda_transition_latency_seconds", (("quantile", "0.5"), ("tenant", "team-a")))]
    assert transition == pytest.approx(0.010, abs=1e-6), "train started 10 ms after extract ended"
    assert samples[("zonda_runs_ended", (("tenant", "team-a"),))] == 1.0
    assert not any("team-a" in dict(labels).values() for _, labels in _samples(api, "bob"))
    assert api.client.get("/metrics").status_code == 401


def _samples(api: Api, who: str) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    text = api.get(who, "/metrics").text
    return [
        (s.name, tuple(s.labels.items()))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]
