"""While the metadata DB refuses connections, the API and the UI answer 503 with Retry-After, log
one line per request instead of a traceback, and serve again once it is back; a scheduler asked
to stop does so within seconds, and the one that takes its runs over finishes them. The outage is
real: the PostgreSQL database stops taking connections and its sessions are ended."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, make_url, select, text

from tests.identity import admin_token, ensure_tenant
from tests.integration.in_process import in_process_zonda
from tests.waiting import wait_until
from zonda.api.app import create_app
from zonda.api.errors import DB_UNAVAILABLE
from zonda.dag_processing.tenants import TenantProcessors
from zonda.db.components import list_components
from zonda.db.engine import make_engine, read_txn
from zonda.db.schema import dags as dags_table
from zonda.db.schema import runs as runs_table
from zonda.scheduler.loop import STOP_WRITE_TIMEOUT
from zonda.scheduler.wakeup import NullWaker
from zonda.services import runs
from zonda.settings import Settings
from zonda.web.session import SESSION_COOKIE

pytestmark = pytest.mark.postgres


@contextmanager
def outage(server_url: str, name: str) -> Iterator[None]:
    """Database `name` takes no new connection and loses the ones it has, until the block ends."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"),
                {"db": name},
            )
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


@pytest.fixture
def db(pg_url: str) -> tuple[str, str]:
    """A fresh, migrated database's URL and its name (what `outage` cuts off)."""
    name = make_url(pg_url).database
    assert name is not None
    return pg_url, name


def test_the_api_and_the_ui_answer_503_while_the_db_is_down_and_serve_once_it_is_back(
    pg_server: str, db: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, name = db
    engine = make_engine(url)
    try:
        settings = Settings(home=tmp_path / "home")
        token = admin_token(engine, settings)
        app = create_app(settings, engine=engine, waker=NullWaker())
        with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
            client.cookies.set(SESSION_COOKIE, token)
            assert client.get("/api/v1/runs").status_code == 200
            assert client.get("/dags").status_code == 200
            caplog.clear()
            with outage(pg_server, name), caplog.at_level(logging.WARNING):
                api = client.get("/api/v1/runs")
                page = client.get("/dags")
            assert api.status_code == 503 and api.headers["Retry-After"] == "5"
            assert api.json()["error"] == {"code": "unavailable", "message": DB_UNAVAILABLE, "details": None}
            assert name not in api.text, "the DB's name and host stay in the server's log"
            assert page.status_code == 503 and page.headers["Retry-After"] == "5"
            assert "text/html" in page.headers["content-type"] and "retry in a few seconds" in page.text
            logged = [r for r in caplog.records if r.name.startswith("zonda.")]
            assert [r.getMessage().split(": metadata DB unavailable")[0] for r in logged] == [
                "GET /api/v1/runs",
                "GET /dags",
            ]
            assert all(r.levelno == logging.WARNING and r.exc_info is None for r in logged)
            assert client.get("/api/v1/runs").status_code == 200
            assert client.get("/dags").status_code == 200
    finally:
        engine.dispose()


def test_the_dag_processor_logs_an_outage_in_one_line_per_pass_and_parses_again_after_it(
    pg_server: str, db: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, name = db
    engine = make_engine(url)
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "hello.py").write_text(DAG_FILE.format(name="hello"))
    stop = threading.Event()
    try:
        ensure_tenant(engine, "default", dag_folders=[str(folder)])
        settings = Settings(home=tmp_path / "home", parse_interval=0.2)
        processors = TenantProcessors(settings, engine, NullWaker())
        threading.Thread(target=processors.run_forever, args=(stop,), daemon=True).start()
        wait_for_dags(engine, ["default/hello"])
        with caplog.at_level(logging.INFO, logger="zonda.dag_processing"), outage(pg_server, name):
            (folder / "later.py").write_text(DAG_FILE.format(name="later"))
            wait_until(
                lambda: len(outage_lines(caplog, "taking the DAG processor's lock")) >= 2, 30, "2 passes"
            )
            failed = [r for r in caplog.records if r.levelno >= logging.WARNING]
        lost = [
            r for r in failed if r.getMessage().startswith("lost the connection that made this the active")
        ]
        assert len(lost) == 1, [r.getMessage() for r in failed]
        assert all(r.exc_info is None for r in failed)
        # A pass that was under way when the sessions ended may log its line before the lock's.
        assert all("failed: metadata DB unavailable (" in r.getMessage() for r in failed if r not in lost)
        wait_for_dags(engine, ["default/hello", "default/later"])
    finally:
        stop.set()
        engine.dispose()


def outage_lines(caplog: pytest.LogCaptureFixture, what: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(f"{what} failed: metadata DB unavailable")]


def wait_for_dags(engine: Engine, dag_ids: list[str]) -> None:
    def parsed() -> bool:
        with read_txn(engine) as conn:
            return sorted(conn.execute(select(dags_table.c.dag_id)).scalars()) == dag_ids

    wait_until(parsed, 30, f"DAGs {dag_ids}")


DAG_FILE = """
from zonda import dag, task

@task
def say() -> str:
    return "hi"

@dag
def {name}() -> None:
    say()
"""


TWO_STEPS = """
import time

from zonda import dag, task


@task
def first() -> int:
    with open({marks!r}, "a") as marks:
        marks.write("first\\n")
    time.sleep(1.0)
    return 1


@task
def second(value: int) -> int:
    with open({marks!r}, "a") as marks:
        marks.write("second\\n")
    return value + 1


@dag
def two_steps() -> None:
    second(first())
"""


def test_a_scheduler_stops_within_seconds_while_the_db_is_down_and_its_successor_finishes_its_runs(
    pg_server: str, db: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, name = db
    marks = tmp_path / "marks"
    with in_process_zonda(url, tmp_path, scheduler_lease_seconds=2.0) as zonda:
        zonda.tenant("team-a", TWO_STEPS.format(marks=str(marks)))
        zonda.start_scheduler(workers=1)
        run_id = zonda.trigger("team-a/two_steps")
        zonda.wait_until(marks.exists, timeout=15)
        thread, stop = zonda.stops[-1]
        with outage(pg_server, name), caplog.at_level(logging.WARNING):
            time.sleep(1.5)  # `first` ends: its outcome waits for a commit the DB refuses
            began = time.monotonic()
            stop.set()
            thread.join(STOP_WRITE_TIMEOUT + 20)
            stopped_in = time.monotonic() - began
        assert not thread.is_alive(), "the scheduler is still retrying its writes"
        zonda.start_scheduler(workers=1)
        (record,) = zonda.wait([run_id], timeout=60)
    assert stopped_in < STOP_WRITE_TIMEOUT + 5
    assert "stopping without writing the last changes of 1 run(s)" in caplog.text
    assert record.state == "success"
    assert marks.read_text().splitlines() == ["first", "second"], "the outcome of first was not lost"


LONG_TASK = """
import time

from zonda import dag, task


@task
def wait_a_while() -> int:
    time.sleep(20)
    return 1


@dag
def long_one() -> None:
    wait_a_while()
"""


def test_a_scheduler_stopping_while_a_commit_is_held_up_waits_for_it_and_hands_its_runs_over(
    db: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = db
    with in_process_zonda(url, tmp_path, heartbeat_interval=5.0) as zonda:
        zonda.tenant("team-a", LONG_TASK)
        scheduler_id = zonda.start_scheduler(workers=1)
        run_id = zonda.trigger("team-a/long_one")
        zonda.wait_until(lambda: runs.get_run(zonda.svc, run_id).tasks[0].state == "running", timeout=15)
        admin = create_engine(url)
        try:
            with admin.connect() as blocker:
                # The run's row locked: the heartbeat's batch, which renews its lease, waits for it.
                blocker.execute(
                    select(runs_table.c.run_id).where(runs_table.c.run_id == run_id).with_for_update()
                )
                wait_until(lambda: _sessions_waiting_on_a_lock(admin) > 0, 15, "the writer waits on the lock")
                thread, stop = zonda.stops[-1]
                with caplog.at_level(logging.WARNING):
                    stop.set()  # nothing new to write: only the batch in flight
                    time.sleep(1.0)
                    blocker.rollback()
                    thread.join(STOP_WRITE_TIMEOUT + 20)
            assert not thread.is_alive()
            assert "stopping without writing" not in caplog.text
            with read_txn(zonda.engine) as conn:
                assert scheduler_id not in {c.id for c in list_components(conn)}, "not unregistered"
                lease_until = conn.execute(
                    select(runs_table.c.lease_until).where(runs_table.c.run_id == run_id)
                ).scalar_one()
            assert lease_until <= datetime.now(UTC), "the run's lease was not released for a successor"
        finally:
            admin.dispose()


def _sessions_waiting_on_a_lock(admin: Engine) -> int:
    with admin.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )
