"""Tenant pools through the API and the CLI, on a real metadata DB (SQLite and PostgreSQL): a tenant's
admins change them, its members read them, other tenants see nothing, every change is audited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from tests.doubles import RecordingWaker
from tests.identity import team_tokens, user_token
from tests.integration.server import serve_in_thread
from zonda.api.app import create_app
from zonda.cli.main import app as cli
from zonda.core.permissions import Role
from zonda.db.engine import read_txn
from zonda.db.schema import audit_log
from zonda.settings import Settings

runner = CliRunner()


@dataclass
class Api:
    client: TestClient
    engine: Engine
    waker: RecordingWaker
    tokens: dict[str, str] = field(default_factory=dict)

    def call(self, user: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return self.client.request(method, f"/api/v1/tenants/{path}", headers=headers, **kwargs)


@pytest.fixture
def api(engine: Engine, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(home=tmp_path / "home")
    waker = RecordingWaker()
    with TestClient(create_app(settings, engine=engine, waker=waker)) as client:
        found = Api(client, engine, waker)
        found.tokens = team_tokens(engine, settings)
        yield found


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], bool(error["message"]), "details" in error) == (code, True, True)


def test_an_admin_creates_resizes_lists_and_deletes_a_pool(api: Api) -> None:
    created = api.call("alice", "PUT", "team-a/pools/gpu", json={"slots": 2, "description": "GPUs"})
    assert created.status_code == 200, created.text
    assert created.json() == {"tenant_id": "team-a", "name": "gpu", "slots": 2, "description": "GPUs"}
    assert api.call("alice", "PUT", "team-a/pools/gpu", json={"slots": 4}).json()["slots"] == 4
    assert [(p["name"], p["slots"]) for p in api.call("vera", "GET", "team-a/pools").json()] == [("gpu", 4)]
    assert api.waker.topics == ["pools", "pools"]
    assert api.call("alice", "DELETE", "team-a/pools/gpu").status_code == 204
    assert_error(api.call("alice", "DELETE", "team-a/pools/gpu"), 404, "not_found")
    assert_error(api.call("alice", "PUT", "team-a/pools/gpu", json={"slots": -1}), 422, "invalid_request")
    assert api.call("alice", "GET", "team-a/pools").json() == []


def test_the_same_name_in_two_tenants_is_two_pools(api: Api) -> None:
    api.call("alice", "PUT", "team-a/pools/gpu", json={"slots": 1})
    api.call("bob", "PUT", "team-b/pools/gpu", json={"slots": 8})
    assert [p["slots"] for p in api.call("alice", "GET", "team-a/pools").json()] == [1]
    assert [p["slots"] for p in api.call("bob", "GET", "team-b/pools").json()] == [8]
    api.call("bob", "DELETE", "team-b/pools/gpu")
    assert [p["slots"] for p in api.call("alice", "GET", "team-a/pools").json()] == [1]


@pytest.mark.parametrize("user", ["olga", "vera"])
def test_members_below_admin_read_but_may_not_change(api: Api, user: str) -> None:
    api.call("alice", "PUT", "team-a/pools/gpu", json={"slots": 1})
    assert api.call(user, "GET", "team-a/pools").status_code == 200
    assert_error(api.call(user, "PUT", "team-a/pools/gpu", json={"slots": 9}), 403, "forbidden")
    assert_error(api.call(user, "DELETE", "team-a/pools/gpu"), 403, "forbidden")


def test_another_tenants_pools_are_404_and_so_is_a_missing_tenant(api: Api) -> None:
    api.call("alice", "PUT", "team-a/pools/gpu", json={"slots": 1})
    assert_error(api.call("bob", "GET", "team-a/pools"), 404, "not_found")
    assert_error(api.call("bob", "PUT", "team-a/pools/gpu", json={"slots": 9}), 404, "not_found")
    assert_error(api.call("bob", "DELETE", "team-a/pools/gpu"), 404, "not_found")
    assert_error(api.call("root", "PUT", "nobody/pools/gpu", json={"slots": 1}), 404, "not_found")
    assert_error(api.call("root", "GET", "nobody/pools"), 404, "not_found")
    assert api.call("root", "GET", "team-a/pools").json()[0]["slots"] == 1


def test_every_change_is_audited(api: Api) -> None:
    api.call("alice", "PUT", "team-a/pools/gpu", json={"slots": 2})
    api.call("root", "DELETE", "team-a/pools/gpu")
    with read_txn(api.engine) as conn:
        rows = conn.execute(
            select(audit_log).where(audit_log.c.action.like("pool.%")).order_by(audit_log.c.id)
        )
        entries = [(r.tenant_id, r.actor, r.action, r.target, r.details) for r in rows]
    assert entries == [
        ("team-a", "alice", "pool.set", "gpu", {"slots": 2, "description": ""}),
        ("team-a", "root", "pool.delete", "gpu", {}),
    ]


@pytest.fixture
def server_url(engine: Engine, tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    """A real uvicorn server in a thread on a free port."""
    settings = Settings(home=tmp_path / "home")
    with serve_in_thread(create_app(settings, engine=engine, waker=RecordingWaker())) as url:
        yield url, settings


def test_cli_pools_take_the_tenant_from_the_option_or_zonda_tenant(
    engine: Engine, server_url: tuple[str, Settings]
) -> None:
    url, settings = server_url
    token = user_token(engine, settings, "alice", {"team-a": Role.ADMIN, "team-b": Role.ADMIN})
    env = {"ZONDA_TOKEN": token, "ZONDA_SERVER": url, "ZONDA_TENANT": "team-b"}

    made = runner.invoke(cli, ["pools", "set", "gpu", "--slots", "2", "--tenant", "team-a"], env=env)
    assert made.exit_code == 0, made.output
    assert "pool gpu of tenant team-a has 2 slots" in made.stdout
    assert runner.invoke(cli, ["pools", "set", "cpu", "--slots", "5"], env=env).exit_code == 0
    listed = runner.invoke(cli, ["pools", "list", "--tenant", "team-a", "--json"], env=env)
    assert [(p["tenant_id"], p["name"]) for p in json.loads(listed.stdout)] == [("team-a", "gpu")]
    from_env = runner.invoke(cli, ["pools", "list", "--json"], env=env)
    assert [(p["tenant_id"], p["name"]) for p in json.loads(from_env.stdout)] == [("team-b", "cpu")]
    assert runner.invoke(cli, ["pools", "delete", "gpu", "--tenant", "team-a"], env=env).exit_code == 0
    missing = runner.invoke(cli, ["pools", "delete", "gpu", "--tenant", "team-a"], env=env)
    assert missing.exit_code == 1 and "pool 'gpu' of tenant 'team-a' does not exist" in missing.stderr
