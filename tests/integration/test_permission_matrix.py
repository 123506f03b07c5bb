"""Every route x every kind of caller, on SQLite and PostgreSQL: each answers by its declared access rule.

The routes come from the app itself, so a route added without a rule in `access_rules.RULES` fails
here. Each request targets tenant A's real objects; callers are nobody, a bad token, each role of
tenant A, the same roles in tenant B only, a superuser, a run of tenant A, an operator of A by the
UI's session cookie and a disabled admin of A. Other tenants'
objects must answer 404 (never 403: that would tell them apart from objects that do not exist),
every 4xx has the one error body, and lists answered to outsiders never mention tenant A.

One DB per backend serves every cell, so mutating cells are idempotent (PUT, PATCH to the same
value) or act on objects that `Target.prepare` (re)creates just before the request.
"""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, update

from tests.identity import user_token
from tests.integration.access_rules import RULES, TENANT_A, Case, Expect, RouteKey, expect
from tests.integration.dag_seed import seed_etl, seed_import_error
from tests.services import drop_pg_database, fresh_pg_database
from zonda.api.app import create_app
from zonda.api.routes.deps import SESSION_COOKIE
from zonda.api.schemas import PoolSpec, TriggerRequest
from zonda.api.schemas.secrets import SecretWrite
from zonda.auth.keys import run_token, secret_keys
from zonda.auth.passwords import hash_password
from zonda.core.ids import tenant_of
from zonda.core.permissions import Principal, Role
from zonda.core.usage import DayUsage, Usage
from zonda.db import identity
from zonda.db.engine import make_engine, read_txn, write_txn
from zonda.db.migrate import upgrade
from zonda.db.schema import runs, task_instances
from zonda.db.usage import add_usage
from zonda.db.workers import Worker, record_heartbeats
from zonda.scheduler.wakeup import NullWaker
from zonda.services import pools, secrets
from zonda.services.context import Services
from zonda.services.identity import issue_token
from zonda.services.runs import trigger_run
from zonda.settings import Settings

TENANT_B = "team-b"
LOGIN_PASSWORD = "correct horse battery"


# The routes, from the app ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    status: int
    """The route's success status."""
    has_body: bool

    @property
    def key(self) -> RouteKey:
        return (self.method, self.path)

    @property
    def params(self) -> list[str]:
        return re.findall(r"\{(\w+)(?::\w+)?\}", self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def api_routes(app: FastAPI) -> list[Route]:
    """Every (method, path) the app serves through FastAPI routes (the OpenAPI and docs pages aside)."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                path = context.path or route.path  # with any prefix given when the router was included
                found.append(Route(method, path, route.status_code or 200, route.body_field is not None))
    return found


def _routes_of_a_fresh_app() -> list[Route]:
    """The routes, read at collection time from an app over an unused engine (nothing connects)."""
    app = create_app(
        Settings(home=Path(tempfile.gettempdir())), engine=create_engine("sqlite://"), waker=NullWaker()
    )
    return api_routes(app)


ROUTES = _routes_of_a_fresh_app()


# The callers ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    name: str
    principal: Principal | None
    """Who the server should take the caller for; None: no valid credentials."""
    cookie: bool = False
    """Sends its token as the UI's session cookie instead of a Bearer header."""

    @property
    def outsider(self) -> bool:
        """Neither a superuser nor anyone with a role in tenant A: must learn nothing about it."""
        return self.principal is None or not (self.principal.superuser or TENANT_A in self.principal.roles)


def _member(tenant: str, role: Role) -> Caller:
    name = f"{tenant[-1]}-{role.value}"
    return Caller(name, Principal(name, roles={tenant: role}))


CALLERS = [
    Caller("anonymous", None),
    Caller("bad-token", None),
    *(_member(TENANT_A, role) for role in Role),
    *(_member(TENANT_B, role) for role in Role),
    Caller("root", Principal("root", superuser=True)),
    Caller("run-a", Principal("run", roles={TENANT_A: Role.VIEWER}, kind="run")),
    Caller("a-operator-by-cookie", Principal("a-operator", roles={TENANT_A: Role.OPERATOR}), cookie=True),
    Caller("disabled-a-admin", None),
]


# The world every cell runs in: two tenants, each with a DAG, a run, a pool, a secret, members ----------


@dataclass
class World:
    client: TestClient
    engine: Engine
    svc: Services
    tokens: dict[str, str]
    run_a: str
    run_tenants: dict[str, str]
    markers_a: frozenset[str]
    """Strings that name tenant A's objects: an outsider's answer must contain none of them."""
    names: Iterator[int] = field(default_factory=itertools.count)

    def headers(self, caller: Caller) -> dict[str, str]:
        token = self.tokens.get(caller.name)
        if not token:
            return {}
        return (
            {"Cookie": f"{SESSION_COOKIE}={token}"} if caller.cookie else {"Authorization": f"Bearer {token}"}
        )

    def fresh(self, prefix: str) -> str:
        return f"{prefix}-{next(self.names)}"

    @property
    def params(self) -> dict[str, str]:
        """Path parameters naming tenant A's objects (routes override `name`, `user_id`, ...)."""
        return {
            "tenant_id": TENANT_A,
            "dag_id": f"{TENANT_A}/etl",
            "version": "1",
            "run_id": self.run_a,
            "task_id": "extract",
            "user_id": "target-user",
        }


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def matrix_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated DB per backend for the whole module (a DB per cell would take minutes)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('matrix') / 'zonda.db'}"
        _migrate(url)
        yield url
        return
    server = request.getfixturevalue("pg_server")
    url, name = fresh_pg_database(server)
    _migrate(url)
    yield url
    drop_pg_database(server, name)


@pytest.fixture(scope="module")
def world(matrix_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    engine = make_engine(matrix_db)
    settings = Settings(home=tmp_path_factory.mktemp("home"), db_url=matrix_db)
    svc = Services(engine=engine, settings=settings, waker=NullWaker())
    tokens = _seed_people(engine, settings)
    run_a, run_b = (_seed_tenant(svc, tenant) for tenant in (TENANT_A, TENANT_B))
    _seed_platform(engine, run_a)
    tokens["run-a"] = run_token(secret_keys(settings), run_a)
    tokens["bad-token"] = "zonda_0123456789abcdef_not-the-secret"
    markers = frozenset({TENANT_A, run_a, "a-viewer", "a-operator", "a-admin", "target-user", "leaving-user"})
    with TestClient(create_app(settings, engine=engine, waker=NullWaker())) as client:
        yield World(client, engine, svc, tokens, run_a, {run_a: TENANT_A, run_b: TENANT_B}, markers)
    engine.dispose()


def _migrate(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()


def _seed_people(engine: Engine, settings: Settings) -> dict[str, str]:
    """The callers' users and tokens, plus the users that routes act on; returns tokens by caller."""
    tokens = {
        c.name: user_token(engine, settings, c.name, dict(c.principal.roles), superuser=c.principal.superuser)
        for c in CALLERS
        if c.principal is not None and c.principal.kind == "user" and not c.cookie
    }
    tokens["a-operator-by-cookie"] = tokens["a-operator"]
    tokens["disabled-a-admin"] = user_token(engine, settings, "disabled-a-admin", {TENANT_A: Role.ADMIN})
    with write_txn(engine) as conn:
        identity.update_user(conn, "disabled-a-admin", disabled=True)
        for user in ("target-user", "leaving-user"):
            identity.create_user(conn, user, None, False, _now())
            identity.set_member(conn, TENANT_A, user, Role.VIEWER)
        identity.create_user(conn, "login-user", hash_password(LOGIN_PASSWORD), False, _now())
    return tokens


def _seed_tenant(svc: Services, tenant: str) -> str:
    """The tenant's DAG (one version), a running run of it (with an output), a pool, a secret; returns the run's id."""
    seed_etl(svc.engine, tenant)
    seed_import_error(svc.engine, f"/dags/{tenant}/broken.py", "SyntaxError", tenant=tenant)
    run_id = trigger_run(svc, f"{tenant}/etl", TriggerRequest(key=f"{tenant}-key")).run_id
    with write_txn(svc.engine) as conn:
        conn.execute(update(runs).where(runs.c.run_id == run_id).values(state="running"))
        conn.execute(
            update(task_instances)
            .where(task_instances.c.run_id == run_id)
            .values(state="running", try_number=1, output_serializer="json", output_size=1, output_data=b"3")
        )
        add_usage(conn, [DayUsage(tenant, _now().date(), Usage(1, 60.0, 60.0, 0.0))])
    pools.set_pool(svc, tenant, "shared", PoolSpec(slots=2))
    secrets.set_secret(svc, tenant, "api_key", SecretWrite(value=f"{tenant}-value"))
    return run_id


def _seed_platform(engine: Engine, run_a: str) -> None:
    """A worker that is running one of tenant A's tasks."""
    attempt = {"run_id": run_a, "task_id": "extract", "map_index": -1, "try_number": 1}
    with write_txn(engine) as conn:
        record_heartbeats(conn, [Worker("worker-1", "host-1", ["default"], 4, _now(), _now(), [attempt])])


def _now() -> datetime:
    return datetime.now(UTC)


# How each route is called ---------------------------------------------------------------------------


Body = Mapping[str, Any] | Callable[["World"], Mapping[str, Any]] | None


@dataclass(frozen=True)
class Target:
    """What a cell sends to a route: path parameters over `World.params`, a body, a set-up step."""

    params: Mapping[str, str] = field(default_factory=dict)
    body: Body = None
    prepare: Callable[[World], Mapping[str, str]] | None = None
    """(Re)creates the object the request acts on; returns more path parameters."""


def _leaving_member(world: World) -> Mapping[str, str]:
    with write_txn(world.engine) as conn:
        identity.set_member(conn, TENANT_A, "leaving-user", Role.VIEWER)
    return {}


def _doomed_user(world: World) -> Mapping[str, str]:
    with write_txn(world.engine) as conn:
        if identity.get_user(conn, "doomed-user") is None:
            identity.create_user(conn, "doomed-user", None, False, _now())
    return {}


def _token_of_another_user(world: World) -> Mapping[str, str]:
    return {"token_id": issue_token(world.svc, "target-user", "matrix").token_id}


def _doomed_pool(world: World) -> Mapping[str, str]:
    pools.set_pool(world.svc, TENANT_A, "doomed", PoolSpec(slots=1))
    return {}


def _doomed_secret(world: World) -> Mapping[str, str]:
    secrets.set_secret(world.svc, TENANT_A, "doomed_secret", SecretWrite(value="v"))
    return {}


TARGETS: Mapping[RouteKey, Target] = {
    ("POST", "/api/v1/auth/login"): Target(body={"user_id": "login-user", "password": LOGIN_PASSWORD}),
    ("POST", "/api/v1/tenants"): Target(body=lambda w: {"tenant_id": w.fresh("tenant")}),
    ("PATCH", "/api/v1/tenants/{tenant_id}"): Target(body={"display_name": "Team A"}),
    ("PUT", "/api/v1/tenants/{tenant_id}/members/{user_id}"): Target(body={"role": "viewer"}),
    ("DELETE", "/api/v1/tenants/{tenant_id}/members/{user_id}"): Target(
        {"user_id": "leaving-user"}, prepare=_leaving_member
    ),
    ("POST", "/api/v1/users"): Target(body=lambda w: {"user_id": w.fresh("user")}),
    ("PATCH", "/api/v1/users/{user_id}"): Target(body={"disabled": False}),
    ("DELETE", "/api/v1/users/{user_id}"): Target({"user_id": "doomed-user"}, prepare=_doomed_user),
    ("POST", "/api/v1/tokens"): Target(body={"name": "matrix"}),
    ("DELETE", "/api/v1/tokens/{token_id}"): Target(prepare=_token_of_another_user),
    ("PATCH", "/api/v1/dags/{dag_id:path}"): Target(body={"paused": False}),
    ("POST", "/api/v1/dags/{dag_id:path}/runs"): Target(body={"params": {}, "key": "matrix"}),
    ("POST", "/api/v1/dags/{dag_id:path}/backfill"): Target(
        body={"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}
    ),
    ("POST", "/api/v1/runs/{run_id}/clear"): Target(body={}),
    ("POST", "/api/v1/runs/{run_id}/tasks/{task_id}/mark"): Target(body={"state": "success"}),
    ("PUT", "/api/v1/tenants/{tenant_id}/pools/{name}"): Target({"name": "shared"}, {"slots": 2}),
    ("DELETE", "/api/v1/tenants/{tenant_id}/pools/{name}"): Target({"name": "doomed"}, prepare=_doomed_pool),
    ("GET", "/api/v1/tenants/{tenant_id}/secrets/{name}"): Target({"name": "api_key"}),
    ("PUT", "/api/v1/tenants/{tenant_id}/secrets/{name}"): Target(
        {"name": "api_key"}, {"value": "new-value"}
    ),
    ("DELETE", "/api/v1/tenants/{tenant_id}/secrets/{name}"): Target(
        {"name": "doomed_secret"}, prepare=_doomed_secret
    ),
}


# The matrix -----------------------------------------------------------------------------------------


def _cells() -> Iterator[Any]:
    for route in ROUTES:
        for case in RULES.get(route.key, (None,)):
            for caller in CALLERS:
                query = (
                    "?" + "&".join(f"{k}={v}" for k, v in case.query.items()) if case and case.query else ""
                )
                yield pytest.param(route, case, caller, id=f"{route}{query} as {caller.name}")


@pytest.mark.parametrize(("route", "case", "caller"), list(_cells()))
def test_every_route_answers_each_caller_by_its_declared_rule(
    world: World, route: Route, case: Case | None, caller: Caller
) -> None:
    assert case is not None, (
        f"{route} has no access rule: declare one in RULES (tests/integration/access_rules.py)"
    )
    target = TARGETS.get(route.key, Target())
    assert target.body is not None or not route.has_body, f"{route} takes a body: give one in TARGETS"
    params = {**world.params, **target.params, **(target.prepare(world) if target.prepare else {})}
    body = target.body(world) if callable(target.body) else target.body
    world.client.cookies.clear()  # a login cell's session cookie must not authenticate the next cell
    response = world.client.request(
        route.method,
        _fill(route.path, params),
        params=dict(case.query),
        json=body,
        headers=world.headers(caller),
    )
    expected = expect(case, caller.principal, _target_tenant(world, route, case, params))
    _check(response, expected, case.ok or (route.status,))
    if caller.outsider and response.is_success:
        leaked = sorted(m for m in world.markers_a if m in response.text)
        assert not leaked, f"{caller.name} learned about tenant {TENANT_A} ({leaked}): {response.text[:500]}"


def test_every_rule_names_a_route_of_the_app() -> None:
    assert set(RULES) <= {r.key for r in ROUTES}, (
        "RULES names routes the app does not have (renamed or removed?)"
    )
    assert set(TARGETS) <= {r.key for r in ROUTES}, "TARGETS names routes the app does not have"


def _fill(template: str, params: Mapping[str, str]) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: params[m.group(1)], template)


def _target_tenant(world: World, route: Route, case: Case, params: Mapping[str, str]) -> str | None:
    """The tenant whose object the request acts on (None: the route targets no tenant)."""
    if "tenant_id" in case.query:
        return case.query["tenant_id"]
    if "dag_id" in case.query:
        return tenant_of(case.query["dag_id"])
    if "tenant_id" in route.params:
        return params["tenant_id"]
    if "dag_id" in route.params:
        return tenant_of(params["dag_id"])
    if "run_id" in route.params:
        return world.run_tenants[params["run_id"]]
    return None


STATUS = {Expect.UNAUTHENTICATED: 401, Expect.FORBIDDEN: 403, Expect.HIDDEN: 404}


def _check(response: httpx.Response, expected: Expect, ok: tuple[int, ...]) -> None:
    """The status `expected` asks for, the error body on every 4xx, the Bearer challenge on a 401."""
    wanted = ok if expected is Expect.OK else (STATUS[expected],)
    request = f"{response.request.method} {response.request.url.path}"
    assert response.status_code in wanted, (
        f"{request}: expected {expected.name} {wanted}, got {response.status_code}: {response.text[:500]}"
    )
    if 400 <= response.status_code < 500:
        error = response.json().get("error")
        assert isinstance(error, dict) and set(error) == {"code", "message", "details"}, response.text
        assert isinstance(error["code"], str) and error["message"], response.text
    if response.status_code == 401:
        assert response.headers.get("WWW-Authenticate") == "Bearer", response.headers


def test_the_run_credential_stops_working_when_its_run_ends(world: World) -> None:
    token = run_token(secret_keys(world.svc.settings), world.run_a)
    headers = {"Authorization": f"Bearer {token}"}
    assert world.client.get(f"/api/v1/runs/{world.run_a}", headers=headers).status_code == 200
    with read_txn(world.engine) as conn:
        state = conn.execute(runs.select().where(runs.c.run_id == world.run_a)).one().state
    try:
        with write_txn(world.engine) as conn:
            conn.execute(update(runs).where(runs.c.run_id == world.run_a).values(state="success"))
        response = world.client.get(f"/api/v1/runs/{world.run_a}", headers=headers)
        _check(response, Expect.UNAUTHENTICATED, ())
    finally:
        with write_txn(world.engine) as conn:
            conn.execute(update(runs).where(runs.c.run_id == world.run_a).values(state=state))
