"""Authentication and identity over the real API: logins, API tokens, run tokens, users, tenants, members."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from tests.identity import admin_token, ensure_tenant, user_token
from tests.integration.dag_seed import load_dags, seed_dag
from zonda.api.app import create_app
from zonda.auth.keys import run_token, secret_keys
from zonda.auth.passwords import hash_password
from zonda.core.permissions import Role
from zonda.db import identity
from zonda.db.engine import write_txn
from zonda.db.schema import api_tokens, runs
from zonda.scheduler.wakeup import NullWaker
from zonda.services.bootstrap import ensure_admin, ensure_default_tenant
from zonda.services.context import Services
from zonda.settings import Settings

SOURCE = """
from zonda import dag, task

@task
def hello() -> str:
    return "hi"

@dag
def greet():
    hello()
"""


@dataclass
class Api:
    client: TestClient
    engine: Engine
    settings: Settings
    admin: str

    def as_(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.fixture
def api(engine: Engine, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(home=tmp_path / "home")
    token = admin_token(engine, settings)
    for tenant in ("team-a", "team-b"):
        ensure_tenant(engine, tenant)
        seed_dag(engine, load_dags(SOURCE, f"/{tenant}/greet.py")["greet"], source=SOURCE, tenant=tenant)
    with TestClient(create_app(settings, engine=engine, waker=NullWaker())) as client:
        yield Api(client, engine, settings, token)


def test_every_api_call_needs_credentials(api: Api) -> None:
    for path in ("/api/v1/dags", "/api/v1/runs", "/api/v1/tenants", "/api/v1/auth/me"):
        response = api.client.get(path)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthenticated"
    assert api.client.get("/api/v1/dags", headers=api.as_("zonda_nope_nope")).status_code == 401
    assert api.client.get("/health").status_code == 200


def test_password_login_gives_a_session_token_and_cookie(api: Api) -> None:
    with write_txn(api.engine) as conn:
        identity.create_user(conn, "ana", hash_password("correct horse"), False, datetime.now(UTC))
        identity.set_member(conn, "team-a", "ana", Role.VIEWER)
    assert (
        api.client.post("/api/v1/auth/login", json={"user_id": "ana", "password": "wrong"}).status_code == 401
    )
    assert api.client.post("/api/v1/auth/login", json={"user_id": "bob", "password": "x"}).status_code == 401
    login = api.client.post("/api/v1/auth/login", json={"user_id": "ana", "password": "correct horse"})
    assert login.status_code == 200
    session = login.json()
    assert session["kind"] == "session" and session["expires_at"]
    assert "zonda_session" in login.cookies
    me = api.client.get("/api/v1/auth/me", headers=api.as_(session["token"])).json()
    assert me == {"user_id": "ana", "kind": "user", "superuser": False, "roles": {"team-a": "viewer"}}
    dags = api.client.get("/api/v1/dags", headers=api.as_(session["token"])).json()
    assert [d["dag_id"] for d in dags] == ["team-a/greet"]


def test_api_tokens_are_shown_once_stored_hashed_and_revocable(api: Api) -> None:
    token = user_token(api.engine, api.settings, "ci", {"team-a": Role.OPERATOR})
    created = api.client.post("/api/v1/tokens", json={"name": "deploy"}, headers=api.as_(token)).json()
    value = created["token"]
    with api.engine.connect() as conn:
        stored = [r.secret_hash for r in conn.execute(api_tokens.select())]
    assert not any(value.split("_", 2)[2] in h for h in stored), "only a hash of the secret is stored"
    listed = api.client.get("/api/v1/tokens", headers=api.as_(value)).json()
    assert {t["name"] for t in listed} == {"test", "deploy"}
    assert all("token" not in t for t in listed)
    assert (
        api.client.delete(f"/api/v1/tokens/{created['token_id']}", headers=api.as_(token)).status_code == 204
    )
    assert api.client.get("/api/v1/dags", headers=api.as_(value)).status_code == 401


def test_an_expired_token_is_refused(api: Api) -> None:
    token = user_token(api.engine, api.settings, "old", {"team-a": Role.VIEWER})
    with write_txn(api.engine) as conn:
        conn.execute(update(api_tokens).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert api.client.get("/api/v1/dags", headers=api.as_(token)).status_code == 401


def test_a_run_token_reads_its_own_tenant_while_the_run_is_active(api: Api) -> None:
    admin = api.as_(api.admin)
    run_a = api.client.post("/api/v1/dags/team-a/greet/runs", json={}, headers=admin).json()["run_id"]
    run_b = api.client.post("/api/v1/dags/team-b/greet/runs", json={}, headers=admin).json()["run_id"]
    token = run_token(secret_keys(api.settings), run_a)
    assert api.client.get(f"/api/v1/runs/{run_a}", headers=api.as_(token)).status_code == 200
    assert api.client.get(f"/api/v1/runs/{run_b}", headers=api.as_(token)).status_code == 404
    assert (
        api.client.post("/api/v1/dags/team-a/greet/runs", json={}, headers=api.as_(token)).status_code == 403
    )
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    assert api.client.get(f"/api/v1/runs/{run_a}", headers=api.as_(forged)).status_code == 401
    with write_txn(api.engine) as conn:
        conn.execute(update(runs).where(runs.c.run_id == run_a).values(state="success"))
    assert api.client.get(f"/api/v1/runs/{run_a}", headers=api.as_(token)).status_code == 401


def test_a_token_carries_its_users_roles_and_stops_working_when_the_user_is_disabled_or_deleted(
    api: Api,
) -> None:
    admin = api.as_(api.admin)
    token = user_token(api.engine, api.settings, "ivo", {"team-a": Role.VIEWER, "team-b": Role.OPERATOR})
    me = api.client.get("/api/v1/auth/me", headers=api.as_(token))
    assert me.json() == {
        "user_id": "ivo",
        "kind": "user",
        "superuser": False,
        "roles": {"team-a": "viewer", "team-b": "operator"},
    }, me.text
    lone = user_token(api.engine, api.settings, "lea")
    assert api.client.get("/api/v1/auth/me", headers=api.as_(lone)).json()["roles"] == {}

    assert api.client.patch("/api/v1/users/ivo", json={"disabled": True}, headers=admin).status_code == 200
    refused = api.client.get("/api/v1/auth/me", headers=api.as_(token))
    assert refused.status_code == 401 and "disabled or was deleted" in refused.text, refused.text
    assert api.client.patch("/api/v1/users/ivo", json={"disabled": False}, headers=admin).status_code == 200
    assert api.client.get("/api/v1/auth/me", headers=api.as_(token)).status_code == 200

    assert api.client.delete("/api/v1/users/ivo", headers=admin).status_code == 204
    gone = api.client.get("/api/v1/auth/me", headers=api.as_(token))
    assert gone.status_code == 401, gone.text


def test_superusers_manage_tenants_users_and_members(api: Api) -> None:
    admin = api.as_(api.admin)
    created = api.client.post(
        "/api/v1/tenants", json={"tenant_id": "ml", "max_running_tasks": 4}, headers=admin
    )
    assert created.status_code == 201, created.text
    assert api.client.post("/api/v1/tenants", json={"tenant_id": "ml"}, headers=admin).status_code == 409
    assert (
        api.client.post("/api/v1/tenants", json={"tenant_id": "Bad_Name"}, headers=admin).status_code == 422
    )
    assert api.client.post("/api/v1/users", json={"user_id": "eve"}, headers=admin).status_code == 201
    member = api.client.put("/api/v1/tenants/ml/members/eve", json={"role": "admin"}, headers=admin)
    assert member.json() == {"tenant_id": "ml", "user_id": "eve", "role": "admin"}
    for method in ("put", "get"):
        path = "/api/v1/tenants/no-such/members" + ("/eve" if method == "put" else "")
        missing = api.client.request(method, path, json={"role": "viewer"}, headers=admin)
        assert missing.status_code == 404 and "no-such" in missing.json()["error"]["message"], missing.text
    eve = api.client.post("/api/v1/tokens", json={"name": "eve"}, headers=admin)  # the admin's own token
    assert eve.json()["user_id"] == "root"
    ml_admin = user_token(api.engine, api.settings, "mia", {"ml": Role.ADMIN})
    assert api.client.get("/api/v1/tenants", headers=api.as_(ml_admin)).json()[0]["tenant_id"] == "ml"
    quota = api.client.patch("/api/v1/tenants/ml", json={"max_running_tasks": 99}, headers=api.as_(ml_admin))
    assert quota.status_code == 403, "a tenant may not raise its own quota"
    assert api.client.get("/api/v1/tenants/team-a", headers=api.as_(ml_admin)).status_code == 404
    assert (
        api.client.post("/api/v1/users", json={"user_id": "x"}, headers=api.as_(ml_admin)).status_code == 403
    )
    assert api.client.delete("/api/v1/tenants/team-a", headers=admin).status_code == 409, "it still has DAGs"
    secret = api.client.put("/api/v1/tenants/ml/secrets/TOKEN", json={"value": "old-team"}, headers=admin)
    assert secret.status_code == 200, secret.text
    assert api.client.delete("/api/v1/tenants/ml", headers=admin).status_code == 204
    assert api.client.post("/api/v1/tenants", json={"tenant_id": "ml"}, headers=admin).status_code == 201
    assert api.client.get("/api/v1/tenants/ml/secrets", headers=admin).json() == [], (
        "a new tenant starts empty"
    )


def test_first_start_creates_the_admin_once_and_the_local_cli_token(engine: Engine, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", admin_password="s3cret-pass")
    svc = Services(engine=engine, settings=settings, waker=NullWaker())
    ensure_default_tenant(svc)
    first = ensure_admin(svc)
    assert first.admin_created and first.generated_password is None
    token_file = settings.home / "token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert not ensure_admin(svc).admin_created
    with TestClient(create_app(settings, engine=engine, waker=NullWaker())) as client:
        login = client.post("/api/v1/auth/login", json={"user_id": "admin", "password": "s3cret-pass"})
        assert login.status_code == 200
        me = client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {token_file.read_text().strip()}"}
        )
    assert me.json()["superuser"] is True and me.json()["roles"] == {"default": "admin"}


def test_a_generated_admin_password_is_returned_to_be_printed_once(engine: Engine, tmp_path: Path) -> None:
    svc = Services(engine=engine, settings=Settings(home=tmp_path / "home"), waker=NullWaker())
    first = ensure_admin(svc)
    assert first.generated_password and len(first.generated_password) >= 16
