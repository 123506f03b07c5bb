"""Usage accounting and the audit log on a real metadata DB (SQLite and PostgreSQL).

Usage comes from attempts that real worker processes ran for a real scheduler, is billed once per
attempt, and outlives the runs it came from. Both endpoints are scoped by tenant: another tenant's
usage or audit log answers 404, and audit entries say who did what to which object, from where.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, select
from typer.testing import CliRunner

from tests.identity import team_tokens
from tests.integration.server import serve_in_thread
from zonda.api.app import create_app
from zonda.cli.main import app as cli
from zonda.core.spec import DagSpec
from zonda.core.usage import Charge, DayUsage, Usage, rollup
from zonda.dag_processing.processor import DagProcessor, TenantFolders
from zonda.db.dags import get_version
from zonda.db.engine import make_engine, read_txn, write_txn
from zonda.db.schema import runs, task_attempts, task_instances, usage_daily
from zonda.db.tenants import create_tenant
from zonda.db.usage import add_usage
from zonda.executors.registry import make_executor
from zonda.scheduler.loop import Scheduler
from zonda.scheduler.ownership import new_scheduler_id
from zonda.scheduler.persistence import Rows, write
from zonda.scheduler.wakeup import NullWaker, make_listener
from zonda.scheduler.writer import Batch, Writer
from zonda.settings import Settings

SOURCE = """
import time

from zonda import dag, task


@task(cpu=2, gpu=1)
def train(n: int) -> int:
    time.sleep(0.2)
    return n


@task
def report(n: int) -> None:
    time.sleep(0.1)
    print(n)


@dag
def bill(n: int = 1):
    report(train(n))
"""


@dataclass
class Api:
    """The API over the test's DB, users with roles in team-a and team-b, and their tokens."""

    client: TestClient
    engine: Engine
    settings: Settings
    tokens: dict[str, str] = field(default_factory=dict)

    def get(self, user: str | None, path: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return self.client.get(f"/api/v1/{path}", params=params, headers=headers)

    def ok(self, user: str, path: str, **params: Any) -> Any:
        response = self.get(user, path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def trigger(self, user: str, tenant: str, n: int = 1) -> str:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        response = self.client.post(
            f"/api/v1/dags/{tenant}/bill/runs", json={"params": {"n": n}}, headers=headers
        )
        assert response.status_code == 201, response.text
        return str(response.json()["run_id"])


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], bool(error["message"]), "details" in error) == (code, True, True)


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(home=tmp_path / "home", db_url=db_url, workers=2, safety_poll_interval=60)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(db_url)
    for tenant in ("team-a", "team-b"):
        folder = tmp_path / tenant
        folder.mkdir()
        (folder / "bill.py").write_text(SOURCE)
        with write_txn(engine) as conn:
            create_tenant(
                conn, tenant, {"display_name": tenant, "dag_folders": [str(folder)]}, datetime.now(UTC)
            )
        DagProcessor(settings, engine, NullWaker(), TenantFolders(tenant, (folder,))).process_once()
    with TestClient(create_app(settings, engine=engine)) as client:
        found = Api(client, engine, settings)
        found.tokens = team_tokens(engine, settings)
        yield found
    engine.dispose()


@pytest.fixture
def scheduler(api: Api) -> Iterator[None]:
    """A scheduler with real local worker processes, in a thread, over the test's DB."""
    scheduler_id = new_scheduler_id()
    loop = Scheduler(
        api.settings,
        api.engine,
        make_executor(api.settings, scheduler_id),
        make_listener(api.settings, api.engine),
        scheduler_id=scheduler_id,
    )
    stop = threading.Event()
    thread = threading.Thread(target=loop.serve, args=(stop,), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(30)


def wait_for_success(api: Api, run_ids: list[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = [api.ok("root", f"runs/{run_id}")["state"] for run_id in run_ids]
        if all(s in ("success", "failed") for s in states):
            assert states == ["success"] * len(run_ids)
            return
        time.sleep(0.1)
    raise AssertionError(f"runs did not finish: {states}")


def expected_usage(engine: Engine) -> list[DayUsage]:
    """The usage of every recorded attempt, computed from the attempts and their tasks' declared resources."""
    query = select(runs.c.tenant_id, runs.c.dag_id, runs.c.version, task_attempts).join(
        runs, runs.c.run_id == task_attempts.c.run_id
    )
    with read_txn(engine) as conn:
        charges = []
        for r in conn.execute(query):
            version = get_version(conn, r.dag_id, r.version)
            assert version is not None
            spec: DagSpec = version.spec
            task = spec.task(r.task_id)
            charges.append(Charge(r.tenant_id, r.started_at, r.ended_at, task.cpu, task.gpu))
    return rollup(charges)


def stored_usage(engine: Engine) -> list[DayUsage]:
    with read_txn(engine) as conn:
        rows = conn.execute(select(usage_daily).order_by(usage_daily.c.tenant_id, usage_daily.c.day))
        return [
            DayUsage(r.tenant_id, r.day, Usage(r.attempts, r.task_seconds, r.cpu_seconds, r.gpu_seconds))
            for r in rows
        ]


def approx(days: list[DayUsage]) -> list[tuple[str, date, int, Any, Any, Any]]:
    return [
        (
            d.tenant_id,
            d.day,
            d.usage.attempts,
            pytest.approx(d.usage.task_seconds),
            pytest.approx(d.usage.cpu_seconds),
            pytest.approx(d.usage.gpu_seconds),
        )
        for d in days
    ]


# Usage ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_usage_is_rolled_up_from_real_attempts_once_and_outlives_the_runs(api: Api, scheduler: None) -> None:
    run_ids = [api.trigger("alice", "team-a", n) for n in (1, 2)] + [api.trigger("bob", "team-b")]
    wait_for_success(api, run_ids)

    expected = expected_usage(api.engine)
    assert {d.tenant_id for d in expected} == {"team-a", "team-b"}
    assert sum(d.usage.attempts for d in expected) == 6
    assert approx(stored_usage(api.engine)) == approx(expected)
    a = [d.usage for d in expected if d.tenant_id == "team-a"]
    # train (cpu=2, gpu=1) runs longer than report (cpu=1, gpu=0): CPU-seconds exceed task-seconds.
    assert (
        sum(u.cpu_seconds for u in a) > sum(u.task_seconds for u in a) > sum(u.gpu_seconds for u in a) > 0.3
    )

    report = api.ok("vera", "usage")
    assert [(d["tenant_id"], d["attempts"]) for d in report["days"]] == [
        ("team-a", d.usage.attempts) for d in expected if d.tenant_id == "team-a"
    ]
    assert report["total"]["task_seconds"] == pytest.approx(sum(u.task_seconds for u in a))

    with read_txn(api.engine) as conn:
        attempt = conn.execute(select(task_attempts).limit(1)).one()._asdict()
    again = Rows(
        attempts=[attempt],
        charges={
            (attempt["run_id"], attempt["task_id"], attempt["map_index"], attempt["try_number"]): Charge(
                "team-a", attempt["started_at"], attempt["ended_at"], cpu=100
            )
        },
    )
    with write_txn(api.engine) as conn:
        write(conn, again)
    assert approx(stored_usage(api.engine)) == approx(expected), "a batch written twice billed twice"
    writer = Writer(api.engine)  # on PostgreSQL, first sent at once as if its attempt were new
    try:
        writer.submit(Batch(again, epoch=0))
        assert len(writer.wait_idle(timeout=30)) == 1, "the batch was not committed"
    finally:
        writer.stop()
    assert approx(stored_usage(api.engine)) == approx(expected), "the writer billed a repeated batch"

    with write_txn(api.engine) as conn:
        for table in (task_attempts, task_instances, runs):
            conn.execute(delete(table))
    assert approx(stored_usage(api.engine)) == approx(expected)
    assert {t["tenant_id"] for t in api.ok("root", "usage")["tenants"]} == {"team-a", "team-b"}


def seed_usage(api: Api) -> None:
    with write_txn(api.engine) as conn:
        add_usage(
            conn,
            [
                DayUsage("team-a", date(2026, 3, 1), Usage(2, 100.0, 200.0, 50.0)),
                DayUsage("team-a", date(2026, 3, 2), Usage(1, 10.0, 10.0, 0.0)),
                DayUsage("team-b", date(2026, 3, 1), Usage(5, 1000.0, 1000.0, 0.0)),
            ],
        )
        add_usage(conn, [DayUsage("team-a", date(2026, 3, 1), Usage(1, 1.0, 1.0, 1.0))])


def test_usage_per_tenant_per_day_with_totals_for_the_tenants_the_caller_reads(api: Api) -> None:
    seed_usage(api)
    period = {"since": "2026-03-01", "until": "2026-03-31"}

    own = api.ok("vera", "usage", **period)
    assert own["days"] == [
        {
            "tenant_id": "team-a",
            "day": "2026-03-01",
            "attempts": 3,
            "task_seconds": 101.0,
            "cpu_seconds": 201.0,
            "gpu_seconds": 51.0,
        },
        {
            "tenant_id": "team-a",
            "day": "2026-03-02",
            "attempts": 1,
            "task_seconds": 10.0,
            "cpu_seconds": 10.0,
            "gpu_seconds": 0.0,
        },
    ]
    assert own["tenants"] == [
        {
            "tenant_id": "team-a",
            "attempts": 4,
            "task_seconds": 111.0,
            "cpu_seconds": 211.0,
            "gpu_seconds": 51.0,
        }
    ]
    assert own == api.ok("vera", "usage", tenant_id="team-a", **period)

    everyone = api.ok("root", "usage", **period)
    assert [t["tenant_id"] for t in everyone["tenants"]] == ["team-a", "team-b"]
    assert everyone["total"] == {
        "attempts": 9,
        "task_seconds": 1111.0,
        "cpu_seconds": 1211.0,
        "gpu_seconds": 51.0,
    }
    one_day = api.ok("root", "usage", since="2026-03-02", until="2026-03-02")
    assert [(d["tenant_id"], d["day"]) for d in one_day["days"]] == [("team-a", "2026-03-02")]
    assert api.ok("alice", "usage")["since"] < api.ok("alice", "usage")["until"]


def test_another_tenants_usage_is_not_found_and_bad_periods_are_refused(api: Api) -> None:
    seed_usage(api)
    assert_error(api.get("vera", "usage", tenant_id="team-b"), 404, "not_found")
    assert_error(api.get("alice", "usage", tenant_id="no-such-team"), 404, "not_found")
    assert [t["tenant_id"] for t in api.ok("bob", "usage", since="2026-03-01")["tenants"]] == ["team-b"]
    assert_error(api.get("root", "usage", since="2026-03-02", until="2026-03-01"), 422, "invalid_params")
    assert_error(api.get("root", "usage", since="last week"), 422, "invalid_request")
    assert_error(api.get(None, "usage"), 401, "unauthenticated")


# Audit log ------------------------------------------------------------------------------------------


def test_audit_entries_say_who_did_what_to_which_object_from_where(api: Api) -> None:
    run_id = api.trigger("alice", "team-a", 3)
    headers = {"Authorization": f"Bearer {api.tokens['alice']}"}
    paused = api.client.patch("/api/v1/dags/team-a/bill", json={"paused": True}, headers=headers)
    assert paused.status_code == 200, paused.text

    entries = api.ok("alice", "audit")["entries"]
    assert [(e["action"], e["target"]) for e in entries] == [
        ("dag.pause", "team-a/bill"),
        ("run.trigger", run_id),
    ]
    trigger = entries[1]
    assert trigger["actor"] == "alice"
    assert trigger["tenant_id"] == "team-a"
    assert trigger["origin"] == "testclient"
    assert trigger["details"] == {"dag_id": "team-a/bill", "key": None}
    assert trigger["at"].endswith("Z")


def test_tenant_admins_read_their_tenants_entries_and_superusers_all(api: Api) -> None:
    api.trigger("alice", "team-a")
    api.trigger("bob", "team-b")
    headers = {"Authorization": f"Bearer {api.tokens['root']}"}
    created = api.client.post("/api/v1/users", json={"user_id": "carol"}, headers=headers)
    assert created.status_code == 201, created.text

    assert {e["tenant_id"] for e in api.ok("alice", "audit")["entries"]} == {"team-a"}
    assert {e["tenant_id"] for e in api.ok("bob", "audit", tenant_id="team-b")["entries"]} == {"team-b"}
    everything = api.ok("root", "audit")["entries"]
    assert {e["tenant_id"] for e in everything} == {"team-a", "team-b", None}
    assert [e["actor"] for e in everything if e["action"] == "user.create"] == ["root"]
    assert [e["target"] for e in api.ok("root", "audit", action="user")["entries"]] == ["carol"]
    assert {e["actor"] for e in api.ok("root", "audit", actor="bob")["entries"]} == {"bob"}
    assert api.ok("root", "audit", since="2999-01-01T00:00:00")["entries"] == []

    assert_error(api.get("alice", "audit", tenant_id="team-b"), 404, "not_found")
    assert_error(api.get("vera", "audit", tenant_id="team-b"), 404, "not_found")
    assert_error(api.get("vera", "audit", tenant_id="team-a"), 403, "forbidden")
    assert_error(api.get("vera", "audit"), 403, "forbidden")
    assert_error(api.get(None, "audit"), 401, "unauthenticated")


def test_audit_pages_follow_the_cursor_newest_first(api: Api) -> None:
    for n in range(5):
        api.trigger("alice", "team-a", n)
    everything = api.ok("alice", "audit")["entries"]
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.ok("alice", "audit", **params)
        seen.extend(e["id"] for e in page["entries"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["id"] for e in everything] == sorted(seen, reverse=True)
    assert len(seen) == 5
    assert_error(api.get("alice", "audit", cursor="not-a-cursor"), 422, "invalid_params")
    assert_error(api.get("alice", "audit", limit=0), 422, "invalid_request")


# The CLI ----------------------------------------------------------------------------------------------


@pytest.fixture
def server_url(api: Api) -> Iterator[str]:
    """A real uvicorn server in a thread on a free port, over the test's DB."""
    with serve_in_thread(create_app(api.settings, engine=api.engine, waker=NullWaker())) as url:
        yield url


def test_cli_shows_usage_and_audit_as_tables_and_json(api: Api, server_url: str) -> None:
    seed_usage(api)
    run_id = api.trigger("alice", "team-a")
    runner = CliRunner()
    env = {"ZONDA_TOKEN": api.tokens["alice"], "COLUMNS": "240"}  # a wide terminal: whole cells
    server = ["--server", server_url]

    table = runner.invoke(cli, ["usage", "--tenant", "team-a", "--since", "2026-03-01", *server], env=env)
    assert table.exit_code == 0, table.output
    assert "2026-03-02" in table.stdout and "total" in table.stdout and "0.03" in table.stdout
    as_json = runner.invoke(
        cli, ["usage", "--since", "2026-03-01", "--until", "2026-03-31", "--json", *server], env=env
    )
    assert json.loads(as_json.stdout)["tenants"] == [
        {
            "tenant_id": "team-a",
            "attempts": 4,
            "task_seconds": 111.0,
            "cpu_seconds": 211.0,
            "gpu_seconds": 51.0,
        }
    ]
    hidden = runner.invoke(cli, ["usage", "--tenant", "team-b", *server], env=env)
    assert hidden.exit_code == 1 and "not found" in hidden.stderr
    bad = runner.invoke(cli, ["usage", "--since", "yesterday", *server], env=env)
    assert bad.exit_code == 2 and "30d, 12h, 45m" in bad.stderr

    entries = json.loads(runner.invoke(cli, ["audit", "--since", "1h", "--json", *server], env=env).stdout)[
        "entries"
    ]
    assert [(e["action"], e["target"], e["actor"]) for e in entries] == [("run.trigger", run_id, "alice")]
    listed = runner.invoke(cli, ["audit", "--tenant", "team-a", *server], env=env)
    assert listed.exit_code == 0, listed.output
    assert "run.trigger" in listed.stdout and run_id in listed.stdout
