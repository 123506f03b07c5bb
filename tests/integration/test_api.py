"""The HTTP API over a real metadata DB (SQLite and PostgreSQL): status codes, bodies and error shapes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from tests.doubles import RecordingWaker
from tests.identity import admin_token
from tests.integration.dag_seed import load_dags, seed_dag, seed_import_error
from zonda.api.app import create_app
from zonda.api.schemas import RunRecord
from zonda.db.commands import pending_commands
from zonda.db.components import Component, register
from zonda.db.engine import read_txn, write_txn
from zonda.db.schema import runs, task_instances
from zonda.settings import Settings
from zonda.worker.logs import log_path

SOURCE = '''
from zonda import dag, task

@task
def extract(n: int) -> list[int]:
    return list(range(n))

@task
def total(xs: list[int]) -> int:
    return sum(xs)

@task
def report(t: int) -> None:
    print(t)

@dag(tags=["etl"])
def etl(n: int, label: str = "x"):
    """Sum the first n numbers."""
    report(total(extract(n)))

@dag(schedule="@daily", start_date="2026-01-01")
def nightly(size: int = 3):
    report(total(extract(size)))
'''

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@dataclass
class Api:
    client: TestClient
    engine: Engine
    settings: Settings
    waker: RecordingWaker

    def trigger(self, dag_id: str = "default/etl", **body: Any) -> dict[str, Any]:
        body.setdefault("params", {"n": 3})
        response = self.client.post(f"/api/v1/dags/{dag_id}/runs", json=body)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    def set_run_state(self, run_id: str, state: str) -> None:
        with write_txn(self.engine) as conn:
            conn.execute(update(runs).where(runs.c.run_id == run_id).values(state=state))


@pytest.fixture
def api(engine: Engine, tmp_path: Path) -> Iterator[Api]:
    for dag in load_dags(SOURCE, "/dags/etl.py").values():
        seed_dag(engine, dag, source=SOURCE, fileloc="/dags/etl.py")
    settings = Settings(home=tmp_path / "home")
    waker = RecordingWaker()
    headers = {"Authorization": f"Bearer {admin_token(engine, settings)}"}
    with TestClient(create_app(settings, engine=engine, waker=waker), headers=headers) as client:
        yield Api(client, engine, settings, waker)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert "details" in error
    return error


# Trigger --------------------------------------------------------------------------------------------


def test_trigger_creates_a_queued_run_with_every_task_pending(api: Api) -> None:
    record = api.trigger(params={"n": 5}, key="user-42")
    assert RunRecord.model_validate(record).dag_id == "default/etl"
    assert record["state"] == "queued"
    assert record["trigger"] == "api"
    assert record["key"] == "user-42"
    assert record["params"] == {"n": 5, "label": "x"}
    assert [t["task_id"] for t in record["tasks"]] == ["extract", "total", "report"]
    assert {t["state"] for t in record["tasks"]} == {"pending"}
    assert [t["upstream"] for t in record["tasks"]] == [[], ["extract"], ["total"]]
    assert all(t["try_number"] == 0 and t["max_tries"] == 1 for t in record["tasks"])
    assert ISO_UTC.match(record["created_at"])
    assert api.waker.wakes == 1


def test_a_nul_character_in_a_json_body_is_422_but_the_text_backslash_u0000_is_not_one(api: Api) -> None:
    response = api.client.post("/api/v1/dags/default/etl/runs", json={"params": {"n": 1}, "key": "a\x00b"})
    error = assert_error(response, 422, "invalid_params")
    assert "body" in error["message"]
    windows_path = "C:\\u0000\\logs"  # a backslash, then the letters u0000: no NUL
    record = api.trigger(params={"n": 1, "label": windows_path})
    assert record["params"]["label"] == windows_path


def test_the_trigger_answers_with_the_run_exactly_as_it_reads_back(api: Api) -> None:
    created = api.trigger(params={"n": 5}, key="user-7")
    response = api.client.get(f"/api/v1/runs/{created['run_id']}")
    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize(
    ("params", "param"),
    [({}, "n"), ({"n": "many"}, "n"), ({"n": 1, "colour": "red"}, "colour")],
    ids=["missing", "wrong-type", "unknown"],
)
def test_trigger_with_bad_params_is_422_naming_the_param(
    api: Api, params: dict[str, Any], param: str
) -> None:
    response = api.client.post("/api/v1/dags/default/etl/runs", json={"params": params})
    error = assert_error(response, 422, "invalid_params")
    assert param in [d["param"] for d in error["details"]]
    assert param in error["message"]
    assert api.waker.wakes == 0


def test_trigger_an_unknown_dag_is_404(api: Api) -> None:
    error = assert_error(api.client.post("/api/v1/dags/default/nope/runs", json={}), 404, "not_found")
    assert "'default/nope'" in error["message"]


def test_a_malformed_body_is_422_invalid_request(api: Api) -> None:
    response = api.client.post("/api/v1/dags/default/etl/runs", json={"params": [1, 2]})
    error = assert_error(response, 422, "invalid_request")
    assert error["details"][0]["field"] == "body.params"


def test_a_paused_dag_can_still_be_triggered(api: Api) -> None:
    assert api.client.patch("/api/v1/dags/default/etl", json={"paused": True}).status_code == 200
    assert api.trigger()["state"] == "queued"


# Read and list ----------------------------------------------------------------------------------------


def test_get_run_returns_the_record_and_404_for_an_unknown_run(api: Api) -> None:
    created = api.trigger()
    response = api.client.get(f"/api/v1/runs/{created['run_id']}")
    assert response.status_code == 200
    assert response.json() == created
    assert_error(api.client.get("/api/v1/runs/missing"), 404, "not_found")


def test_list_runs_filters_by_dag_key_and_state(api: Api) -> None:
    ids = [api.trigger(key=key)["run_id"] for key in ("user-1", "user-1", "user-2")]
    nightly = api.trigger("default/nightly", params={})["run_id"]
    api.set_run_state(ids[0], "success")

    def listed(**query: Any) -> list[str]:
        response = api.client.get("/api/v1/runs", params=query)
        assert response.status_code == 200, response.text
        return [r["run_id"] for r in response.json()["runs"]]

    assert listed() == [nightly, *reversed(ids)]
    assert listed(dag_id="default/nightly") == [nightly]
    assert listed(key="user-1") == [ids[1], ids[0]]
    assert listed(state="success") == [ids[0]]
    assert listed(dag_id="default/etl", key="user-2", state="queued") == [ids[2]]
    first = api.client.get(f"/api/v1/runs/{ids[1]}").json()["created_at"]
    assert listed(created_after=first) == [nightly, ids[2], ids[1]]
    assert listed(created_before=first) == [ids[0]]


def test_list_runs_pages_with_a_cursor(api: Api) -> None:
    ids = [api.trigger(key=f"k{i}")["run_id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        query = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.client.get("/api/v1/runs", params=query).json()
        seen += [r["run_id"] for r in page["runs"]]
        cursor = page["next_cursor"]
    assert seen == list(reversed(ids))
    assert cursor is None


def test_list_runs_rejects_a_bad_cursor_and_limit(api: Api) -> None:
    error = assert_error(api.client.get("/api/v1/runs", params={"cursor": "junk"}), 422, "invalid_params")
    assert error["details"][0]["param"] == "cursor"
    assert_error(api.client.get("/api/v1/runs", params={"limit": 0}), 422, "invalid_request")


# Clear ------------------------------------------------------------------------------------------------


def test_clear_a_queued_run_is_409(api: Api) -> None:
    run_id = api.trigger()["run_id"]
    response = api.client.post(f"/api/v1/runs/{run_id}/clear", json={})
    assert "queued" in assert_error(response, 409, "conflict")["message"]


def test_clear_records_a_command_for_the_scheduler(api: Api) -> None:
    run_id = api.trigger()["run_id"]
    api.set_run_state(run_id, "failed")
    response = api.client.post(f"/api/v1/runs/{run_id}/clear", json={"task_id": "total", "downstream": True})
    assert response.status_code == 202, response.text
    assert response.json()["run_id"] == run_id
    with read_txn(api.engine) as conn:
        [command] = pending_commands(conn)
    assert (command.id, command.kind) == (response.json()["command_id"], "clear")
    assert command.payload == {"task_id": "total", "downstream": True}
    assert api.waker.wakes == 2
    unknown = api.client.post(f"/api/v1/runs/{run_id}/clear", json={"task_id": "nope"})
    assert_error(unknown, 404, "not_found")
    assert api.client.get(f"/api/v1/runs/{run_id}").json()["pending_commands"] == ["clear"]


def test_mark_records_a_command_and_refuses_what_cannot_be_marked(api: Api) -> None:
    run_id = api.trigger()["run_id"]
    url = f"/api/v1/runs/{run_id}/tasks/total/mark"
    assert (
        "queued" in assert_error(api.client.post(url, json={"state": "success"}), 409, "conflict")["message"]
    )
    api.set_run_state(run_id, "running")
    assert_error(api.client.post(url, json={"state": "running"}), 422, "invalid_request")
    assert_error(api.client.post(url, json={"state": "success", "map_index": 3}), 404, "not_found")
    assert_error(
        api.client.post(f"/api/v1/runs/{run_id}/tasks/nope/mark", json={"state": "failed"}), 404, "not_found"
    )
    response = api.client.post(url, json={"state": "failed"})
    assert response.status_code == 202, response.text
    with read_txn(api.engine) as conn:
        [command] = pending_commands(conn)
    assert command.kind == "mark"
    assert command.payload == {
        "task_id": "total",
        "map_index": None,
        "state": "failed",
        "note": "marked failed by root",
    }
    assert api.client.get(f"/api/v1/runs/{run_id}").json()["pending_commands"] == ["mark"]


# DAGs ---------------------------------------------------------------------------------------------------


def test_list_and_get_dags_show_the_latest_version(api: Api) -> None:
    response = api.client.get("/api/v1/dags")
    assert response.status_code == 200
    by_id = {d["dag_id"]: d for d in response.json()}
    assert set(by_id) == {"default/etl", "default/nightly"}
    etl = by_id["default/etl"]
    assert etl["tasks"] == ["extract", "total", "report"]
    assert etl["params_schema"]["required"] == ["n"]
    assert (etl["version"], etl["paused"], etl["active"], etl["schedule"]) == (1, False, True, None)
    assert by_id["default/nightly"]["schedule"] == "0 0 * * *"
    assert api.client.get("/api/v1/dags/default/etl").json() == etl
    assert_error(api.client.get("/api/v1/dags/default/nope"), 404, "not_found")


def test_pause_and_unpause(api: Api) -> None:
    paused = api.client.patch("/api/v1/dags/default/nightly", json={"paused": True})
    assert paused.status_code == 200
    assert paused.json()["paused"] is True
    assert api.client.get("/api/v1/dags/default/nightly").json()["paused"] is True
    assert api.client.patch("/api/v1/dags/default/nightly", json={"paused": False}).json()["paused"] is False
    assert api.waker.wakes == 2
    assert_error(api.client.patch("/api/v1/dags/default/nope", json={"paused": True}), 404, "not_found")
    assert_error(api.client.patch("/api/v1/dags/default/etl", json={}), 422, "invalid_request")


def test_dag_ids_with_a_slash_resolve(api: Api) -> None:
    seed_dag(api.engine, load_dags(SOURCE, "/dags/etl.py")["etl"], dag_id="team-a/retrain")
    assert api.client.get("/api/v1/dags/team-a/retrain").json()["dag_id"] == "team-a/retrain"
    assert api.client.patch("/api/v1/dags/team-a/retrain", json={"paused": True}).json()["paused"]
    assert api.trigger("team-a/retrain")["dag_id"] == "team-a/retrain"
    response = api.client.post(
        "/api/v1/dags/team-a/retrain/backfill", json={"start": "2026-01-01", "end": "2026-01-02"}
    )
    assert_error(response, 400, "bad_request")


def test_import_errors_are_listed(api: Api) -> None:
    assert api.client.get("/api/v1/import-errors").json() == []
    seed_import_error(api.engine, "/dags/broken.py", "Traceback...\nSyntaxError: invalid syntax")
    [error] = api.client.get("/api/v1/import-errors").json()
    assert error["fileloc"] == "/dags/broken.py"
    assert "SyntaxError" in error["error"]
    assert ISO_UTC.match(error["recorded_at"])


# Logs --------------------------------------------------------------------------------------------------


def _write_log(api: Api, run_id: str, task_id: str, try_number: int, text: str) -> None:
    with write_txn(api.engine) as conn:
        conn.execute(
            update(task_instances)
            .where(task_instances.c.run_id == run_id, task_instances.c.task_id == task_id)
            .values(try_number=try_number, state="failed")
        )
    path = Path(log_path(str(api.settings.logs_dir), "default/etl", run_id, task_id, -1, try_number))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_logs_are_read_back_as_text(api: Api) -> None:
    run_id = api.trigger()["run_id"]
    _write_log(api, run_id, "extract", 1, "first attempt\n")
    _write_log(api, run_id, "extract", 2, "second attempt\n")
    url = f"/api/v1/runs/{run_id}/tasks/extract/logs"
    latest = api.client.get(url)
    assert latest.status_code == 200
    assert latest.headers["content-type"].startswith("text/plain")
    assert latest.text == "second attempt\n"
    assert api.client.get(url, params={"try_number": 1}).text == "first attempt\n"
    assert (
        "no try 3" in assert_error(api.client.get(url, params={"try_number": 3}), 404, "not_found")["message"]
    )


def test_logs_404_says_what_is_missing(api: Api) -> None:
    run_id = api.trigger()["run_id"]
    base = f"/api/v1/runs/{run_id}/tasks"
    assert "not started" in assert_error(api.client.get(f"{base}/total/logs"), 404, "not_found")["message"]
    assert "not in run" in assert_error(api.client.get(f"{base}/nope/logs"), 404, "not_found")["message"]
    assert_error(api.client.get("/api/v1/runs/missing/tasks/total/logs"), 404, "not_found")
    with write_txn(api.engine) as conn:
        conn.execute(update(task_instances).where(task_instances.c.run_id == run_id).values(try_number=1))
    silent = api.client.get(f"{base}/total/logs")
    assert (silent.status_code, silent.text) == (200, ""), "an attempt that wrote nothing has an empty log"


# Backfill ------------------------------------------------------------------------------------------------


def test_backfill_creates_one_run_per_fire_time_and_skips_existing(api: Api) -> None:
    body = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-03T00:00:00Z"}
    first = api.client.post("/api/v1/dags/default/nightly/backfill", json=body)
    assert first.status_code == 201, first.text
    assert first.json()["skipped_existing"] == 0
    assert len(first.json()["run_ids"]) == 3
    second = api.client.post(
        "/api/v1/dags/default/nightly/backfill", json={"start": "2026-01-02", "end": "2026-01-04"}
    )
    assert second.json()["skipped_existing"] == 2
    assert len(second.json()["run_ids"]) == 1
    page = api.client.get("/api/v1/runs", params={"dag_id": "default/nightly"}).json()["runs"]
    assert sorted(r["logical_date"] for r in page) == [f"2026-01-0{d}T00:00:00.000000Z" for d in (1, 2, 3, 4)]
    assert {r["trigger"] for r in page} == {"backfill"}


def test_backfill_needs_a_schedule_and_an_ordered_range(api: Api) -> None:
    body = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-03T00:00:00Z"}
    error = assert_error(api.client.post("/api/v1/dags/default/etl/backfill", json=body), 400, "bad_request")
    assert "no schedule" in error["message"]
    reversed_range = {"start": body["end"], "end": body["start"]}
    assert_error(
        api.client.post("/api/v1/dags/default/nightly/backfill", json=reversed_range), 400, "bad_request"
    )
    assert_error(api.client.post("/api/v1/dags/default/nope/backfill", json=body), 404, "not_found")


# Health and OpenAPI --------------------------------------------------------------------------------------


def test_health_is_degraded_without_a_scheduler_and_ok_with_one(api: Api) -> None:
    response = api.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "db": True,
        "scheduler_heartbeat_age_seconds": None,
        "schedulers": 0,
    }
    now = datetime.now(UTC)
    with write_txn(api.engine) as conn:
        register(conn, Component("sched-1", "scheduler", "host", 123, now, now))
    body = api.client.get("/health").json()
    assert (body["status"], body["schedulers"]) == ("ok", 1)
    assert 0 <= body["scheduler_heartbeat_age_seconds"] < 5


def test_openapi_lists_every_path(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert set(paths) >= {
        "/api/v1/dags/{dag_id}/runs",
        "/api/v1/runs",
        "/api/v1/runs/{run_id}",
        "/api/v1/runs/{run_id}/clear",
        "/api/v1/runs/{run_id}/tasks/{task_id}/logs",
        "/api/v1/dags",
        "/api/v1/dags/{dag_id}",
        "/api/v1/import-errors",
        "/api/v1/dags/{dag_id}/backfill",
        "/health",
    }
    trigger = paths["/api/v1/dags/{dag_id}/runs"]["post"]
    assert "201" in trigger["responses"]
    assert "ErrorResponse" in trigger["responses"]["404"]["content"]["application/json"]["schema"]["$ref"]


def test_unknown_paths_and_methods_get_the_error_body(api: Api) -> None:
    assert_error(api.client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(api.client.delete("/api/v1/runs"), 405, "method_not_allowed")
