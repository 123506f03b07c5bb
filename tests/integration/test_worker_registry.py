"""The workers table on SQLite and PostgreSQL, through its data functions, the API and the CLI view."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.identity import admin_token
from zonda.api.app import create_app
from zonda.api.schemas import WorkerRecord
from zonda.cli import render
from zonda.db import components
from zonda.db.engine import read_txn, write_txn
from zonda.db.workers import Worker, list_workers, prune_workers, record_heartbeats
from zonda.executors.registry import make_executor
from zonda.scheduler.loop import Scheduler
from zonda.scheduler.wakeup import NullWaker
from zonda.settings import Settings


def worker(
    worker_id: str, heartbeat_at: datetime, running: int = 0, cpus: int | None = 2, resting: int = 0
) -> Worker:
    return Worker(
        worker_id=worker_id,
        hostname="gpu-box-1",
        queues=["default", "gpu"],
        concurrency=4,
        started_at=heartbeat_at - timedelta(minutes=5),
        heartbeat_at=heartbeat_at,
        running=[
            {"run_id": "r1", "task_id": f"t{i}", "map_index": -1, "try_number": 1} for i in range(running)
        ],
        cpus=cpus,
        resting=resting,
    )


def test_heartbeats_are_upserted_listed_and_pruned(engine: Engine) -> None:
    now = datetime.now(UTC)
    with write_txn(engine) as conn:
        record_heartbeats(conn, [worker("b@h", now - timedelta(hours=2)), worker("a@h", now, running=1)])
    with write_txn(engine) as conn:  # a second scheduler records the same workers again, newer
        record_heartbeats(
            conn, [worker("a@h", now + timedelta(seconds=1), running=2, resting=1), worker("a@h", now)]
        )
    with read_txn(engine) as conn:
        rows = list_workers(conn)
    assert [w.worker_id for w in rows] == ["a@h", "b@h"]
    assert len(rows[0].running) == 2 and rows[0].queues == ["default", "gpu"] and rows[0].cpus == 2
    assert rows[0].resting == 1 and rows[1].resting == 0
    with write_txn(engine) as conn:
        assert prune_workers(conn, now - timedelta(hours=1)) == 1
    with read_txn(engine) as conn:
        assert [w.worker_id for w in list_workers(conn)] == ["a@h"]


def test_a_scheduler_forgets_schedulers_and_workers_silent_past_the_retention(
    engine: Engine, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    with write_txn(engine) as conn:
        for name, silent in (("decommissioned", timedelta(hours=3)), ("just-died", timedelta(minutes=5))):
            components.register(
                conn, components.Component(name, "scheduler", "old-host", 1, now - silent, now - silent)
            )
        record_heartbeats(conn, [worker("gone@h", now - timedelta(hours=3)), worker("recent@h", now)])
    settings = Settings(home=tmp_path, workers=1, gone_retention=3600, heartbeat_interval=0.2)
    scheduler = Scheduler(settings, engine, make_executor(settings, "pruner"), None, scheduler_id="pruner")
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with read_txn(engine) as conn:
                names = {c.id for c in components.list_components(conn)}
                listed = {w.worker_id for w in list_workers(conn)}
            if "decommissioned" not in names:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(30)
    assert names >= {"just-died", "pruner"} and "decommissioned" not in names
    assert listed == {"recent@h"}


def test_the_api_lists_workers_and_tells_which_are_alive(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")  # one line per worker, whatever the terminal running the tests
    now = datetime.now(UTC)
    with write_txn(engine) as conn:
        record_heartbeats(
            conn,
            [
                worker("live@h", now, running=1, resting=1),
                worker("gone@h", now - timedelta(minutes=5), cpus=None),
            ],
        )
    settings = Settings(heartbeat_interval=2.0, home=tmp_path)
    headers = {"Authorization": f"Bearer {admin_token(engine, settings)}"}
    client = TestClient(create_app(settings, engine=engine, waker=NullWaker()), headers=headers)
    body = client.get("/api/v1/workers").json()
    alive = {w["worker_id"]: w["alive"] for w in body}
    assert alive == {"gone@h": False, "live@h": True}
    assert [w["cpus"] for w in body] == [None, 2], "a worker that did not say its CPUs: null"
    assert body[1]["running"] == [{"run_id": "r1", "task_id": "t0", "map_index": -1, "try_number": 1}]
    assert [w["resting"] for w in body] == [0, 1]
    assert "/api/v1/workers" in client.get("/openapi.json").json()["paths"]

    render.workers_view([WorkerRecord.model_validate(w) for w in body])
    out = capsys.readouterr().out
    assert "live@h" in out and "1/4 (1 resting) r1/t0" in out and "default,gpu" in out
    assert [line.split()[3] for line in out.splitlines() if "@h" in line] == ["?", "2"], "the cpus column"
