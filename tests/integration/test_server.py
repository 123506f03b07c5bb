"""The whole server with real worker processes, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.server import ZondaServer
from tests.services import drop_pg_database, fresh_pg_database

DAGS = Path(__file__).with_name("dags")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZondaServer]:
    home = tmp_path_factory.mktemp("home")
    name = ""
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'zonda.db'}"
    else:
        url, name = fresh_pg_database(request.getfixturevalue("pg_server"))
    env = {
        "ZONDA_TEST_MARKS": str(home / "marks"),
        "ZONDA_TEST_VENV": sys.prefix,
    }
    dags = shutil.copytree(DAGS, home / "dags")
    srv = ZondaServer(home, dags, url, workers=4, env=env)
    srv.start(expect_dags=12)
    tiny = {"slots": 1, "description": "one at a time"}
    srv.client.put("/api/v1/tenants/default/pools/tiny", json=tiny).raise_for_status()
    token = {"value": "s3cr3t-value-123", "description": "what the secrets DAG sends to its API"}
    srv.client.put("/api/v1/tenants/default/secrets/API_TOKEN", json=token).raise_for_status()
    yield srv
    srv.stop()
    if name:
        drop_pg_database(request.getfixturevalue("pg_server"), name)


def tasks_by_id(record: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(t["task_id"], t["map_index"]): t for t in record["tasks"]}


def test_retry_after_a_failure(server: ZondaServer) -> None:
    record = server.wait_run(server.trigger("flaky_once"))
    task = tasks_by_id(record)[("flaky", -1)]
    assert record["state"] == "success"
    assert task["try_number"] == 2
    assert "first attempt fails on purpose" in server.log(record["run_id"], "flaky", try_number=1)
    second = server.log(record["run_id"], "flaky")
    assert "second attempt works" in second
    assert second.rstrip().endswith("--- success ---")


def test_timeout_fails_the_task_with_a_clear_error(server: ZondaServer) -> None:
    record = server.wait_run(server.trigger("timeouts"))
    task = tasks_by_id(record)[("sleepy", -1)]
    assert record["state"] == "failed"
    assert "timed out after 0.5 s" in task["error"]


def test_a_worker_that_dies_is_detected_and_the_task_retried(server: ZondaServer) -> None:
    record = server.wait_run(server.trigger("crashy"))
    assert record["state"] == "success"
    assert tasks_by_id(record)[("die_first", -1)]["try_number"] == 2


def test_trigger_rules(server: ZondaServer) -> None:
    record = server.wait_run(server.trigger("rules"))
    states = {k[0]: t["state"] for k, t in tasks_by_id(record).items()}
    assert states == {
        "boom": "failed",
        "never": "upstream_failed",
        "on_failure": "success",
        "report": "success",
    }
    assert record["state"] == "failed"


def test_mapping_fans_out_at_run_time_and_joins(server: ZondaServer) -> None:
    record = server.wait_run(server.trigger("mapped", {"n": 4}))
    tasks = tasks_by_id(record)
    assert record["state"] == "success"
    assert sorted(i for (t, i) in tasks if t == "square") == [0, 1, 2, 3]
    assert tasks[("total", -1)]["upstream"] == ["square"]


def test_secrets_are_masked_in_logs(server: ZondaServer) -> None:
    record = server.wait_run(server.trigger("secrets"))
    log = server.log(record["run_id"], "leak")
    assert record["state"] == "success"
    assert "calling the API with ***" in log
    assert "s3cr3t-value-123" not in log


def test_max_active_runs_keeps_runs_apart(server: ZondaServer) -> None:
    ids = [server.trigger("one_at_a_time") for _ in range(3)]
    records = sorted((server.wait_run(i) for i in ids), key=lambda r: r["started_at"])
    for before, after in itertools.pairwise(records):
        assert before["ended_at"] <= after["started_at"]


def test_pool_slots_are_enforced(server: ZondaServer) -> None:
    record = server.wait_run(server.trigger("pools"))
    spans = sorted((t["started_at"], t["ended_at"]) for t in record["tasks"])
    assert record["state"] == "success"
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start


def test_an_unknown_pool_fails_with_a_message(server: ZondaServer) -> None:
    record = server.wait_run(server.trigger("unknown_pool"))
    assert (
        "pool 'missing' of tenant 'default' does not exist" in tasks_by_id(record)[("nowhere", -1)]["error"]
    )


def test_bash_task_with_env_and_virtualenv(server: ZondaServer) -> None:
    record = server.wait_run(server.trigger("bash_env", key="cust-7"))
    log = server.log(record["run_id"], "show")
    assert record["state"] == "success"
    assert "FOO=bar key=cust-7" in log
    assert f"python={sys.prefix}/bin/python" in log


def test_schedules_fire_every_second_without_duplicates(server: ZondaServer) -> None:
    server.wait_until(lambda: len(_scheduled(server)) >= 3, 10, "three ticks")
    dates = sorted(r["logical_date"] for r in _scheduled(server))
    assert len(dates) == len(set(dates))


def test_run_record_shape(server: ZondaServer) -> None:
    record = server.wait_run(server.trigger("mapped", {"n": 2}, key="user-9"))
    assert set(record) >= {
        "run_id",
        "dag_id",
        "dag_version",
        "state",
        "key",
        "params",
        "trigger",
        "created_at",
        "started_at",
        "ended_at",
        "tasks",
    }
    task = record["tasks"][0]
    assert set(task) >= {
        "task_id",
        "map_index",
        "state",
        "try_number",
        "upstream",
        "queued_at",
        "started_at",
        "ended_at",
    }
    assert record["created_at"].endswith("Z") and len(record["created_at"]) == len(
        "2026-01-01T00:00:00.000000Z"
    )
    found = server.client.get("/api/v1/runs", params={"key": "user-9"}).json()["runs"]
    assert [r["run_id"] for r in found] == [record["run_id"]]


def _scheduled(server: ZondaServer) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = server.client.get(
        "/api/v1/runs", params={"dag_id": "default/ticker", "limit": 500}
    ).json()["runs"]
    return runs


def test_bad_dag_file_does_not_stop_the_others(server: ZondaServer) -> None:
    broken = server.dags / "zz_broken.py"
    broken.write_text("import zonda\ndef broken(:\n")
    try:
        errors_listed = lambda: server.client.get("/api/v1/import-errors").json()  # noqa: E731
        server.wait_until(errors_listed, 20, "import error recorded")
        errors = server.client.get("/api/v1/import-errors").json()
        assert "SyntaxError" in errors[0]["error"]
        assert server.wait_run(server.trigger("flaky_once"))["state"] == "success"
    finally:
        broken.unlink()


PINNED = """
import time

from zonda import dag, task

VERSION = "{version}"


@task
def hold() -> None:
    time.sleep({sleep})


@task
def report() -> str:
    print("running version", VERSION)
    return VERSION


@dag
def pinned() -> None:
    hold() >> report()
"""


def test_a_run_keeps_the_code_version_it_started_with(server: ZondaServer) -> None:
    path = server.dags / "pinned.py"
    path.write_text(PINNED.format(version="one", sleep=2))
    server.wait_until(lambda: _dag_version(server, "default/pinned") == 1, 20, "pinned v1 parsed")
    first = server.trigger("pinned")
    path.write_text(PINNED.format(version="two!", sleep=0))
    server.wait_until(lambda: _dag_version(server, "default/pinned") == 2, 20, "pinned v2 parsed")
    second = server.trigger("pinned")
    old, new = server.wait_run(first), server.wait_run(second)
    assert (old["dag_version"], new["dag_version"]) == (1, 2)
    assert "running version one" in server.log(first, "report")
    assert "running version two!" in server.log(second, "report")


def _dag_version(server: ZondaServer, dag_id: str) -> int:
    response = server.client.get(f"/api/v1/dags/{dag_id}")
    return int(response.json()["version"]) if response.status_code == 200 else 0


def test_task_details_list_attempts_and_outputs_download_from_the_store(server: ZondaServer) -> None:
    run_id = server.wait_run(server.trigger("mapped", {"n": 1200}))["run_id"]
    grid = server.client.get(f"/api/v1/runs/{run_id}/tasks/grid").json()
    assert [a["state"] for a in grid["attempts"]] == ["success"]
    assert grid["output"]["inline"] is False and grid["output"]["mapped_length"] == 1200
    download = server.client.get(f"/api/v1/runs/{run_id}/tasks/grid/output")
    assert download.headers["X-Zonda-Serializer"] == grid["output"]["serializer"] == "json"
    assert json.loads(download.content) == list(range(1200))
    square = server.client.get(f"/api/v1/runs/{run_id}/tasks/square", params={"map_index": 3}).json()
    assert square["output"]["inline"] is True and square["output"]["preview"] == "9"
    assert square["inputs"] == [{"task_id": "grid", "output": grid["output"], "item": 3, "outputs": None}], (
        "a mapped instance takes item 3 of grid's list"
    )
    total = server.client.get(f"/api/v1/runs/{run_id}/tasks/total").json()
    assert total["inputs"] == [{"task_id": "square", "output": None, "item": None, "outputs": 1200}]
    missing = server.client.get(f"/api/v1/runs/{run_id}/tasks/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_cancel_kills_the_running_task_and_starts_nothing_else(server: ZondaServer) -> None:
    run_id = server.trigger("cancellable")
    marks = server.home / "marks"
    server.wait_until((marks / f"{run_id}.long_sleep_started").exists, 30, "long_sleep started")
    accepted = server.client.post(f"/api/v1/runs/{run_id}/cancel")
    assert accepted.status_code == 202, accepted.text
    record = server.wait_run(run_id, timeout=15)
    tasks = tasks_by_id(record)
    assert record["state"] == "failed"
    assert tasks[("long_sleep", -1)]["state"] == "failed"
    assert tasks[("long_sleep", -1)]["error"].startswith("cancelled by ")
    assert tasks[("after_sleep", -1)]["state"] == "skipped"
    again = server.client.post(f"/api/v1/runs/{run_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    time.sleep(1)
    assert not (marks / f"{run_id}.long_sleep_finished").exists(), "the attempt was killed"
    assert not (marks / f"{run_id}.after_sleep").exists()


def test_marking_a_running_task_successful_kills_it_and_lets_downstream_run(server: ZondaServer) -> None:
    run_id = server.trigger("cancellable")
    marks = server.home / "marks"
    server.wait_until((marks / f"{run_id}.long_sleep_started").exists, 30, "long_sleep started")
    url = f"/api/v1/runs/{run_id}/tasks/long_sleep/mark"
    assert server.client.post(url, json={"state": "skipped"}).status_code == 422
    accepted = server.client.post(url, json={"state": "success"})
    assert accepted.status_code == 202, accepted.text
    record = server.wait_run(run_id, timeout=15)
    tasks = tasks_by_id(record)
    assert record["state"] == "success"
    assert tasks[("long_sleep", -1)]["state"] == "success"
    assert tasks[("after_sleep", -1)]["state"] == "success"
    attempts = server.client.get(f"/api/v1/runs/{run_id}/tasks/long_sleep").json()["attempts"]
    assert attempts[-1]["error"].startswith("marked success by "), attempts
    again = server.client.post(url, json={"state": "success"})
    assert again.status_code == 409 and "already success" in again.json()["error"]["message"]
    assert server.client.post(url, json={"state": "failed", "map_index": 4}).status_code == 404
    assert server.client.post(url, json={"state": "failed"}).status_code == 202
    server.wait_until(
        lambda: server.client.get(f"/api/v1/runs/{run_id}").json()["state"] == "failed", 15, "the run fails"
    )
    assert not (marks / f"{run_id}.long_sleep_finished").exists(), "the attempt was killed"


def test_the_audit_log_has_the_client_address_a_local_proxy_forwards(server: ZondaServer) -> None:
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 and ::1 by default; FORWARDED_ALLOW_IPS names other proxies.
    sent = server.client.post(
        "/api/v1/dags/default/rules/runs", json={"params": {}}, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert sent.status_code == 201, sent.text
    run_id = sent.json()["run_id"]
    entries = server.client.get("/api/v1/audit", params={"limit": 200}).json()["entries"]
    [trigger] = [e for e in entries if e["target"] == run_id]
    assert trigger["origin"] == "203.0.113.9"
