"""Fuzz every operation of the OpenAPI spec, in process, as a superuser and as a viewer of one tenant.

schemathesis generates requests from the spec (valid and invalid ones); whatever it sends, the API
must not fail (no 5xx) and every 4xx must carry the one error body. It runs on SQLite and on
PostgreSQL (which refuses what SQLite accepts, e.g. NUL characters in text). Examples are
derandomized and capped per operation, so a run is repeatable and takes about a minute per backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine, update

from tests.identity import user_token
from tests.integration.dag_seed import seed_etl
from tests.services import drop_pg_database, fresh_pg_database
from zonda.api.app import create_app
from zonda.api.schemas import PoolSpec, TriggerRequest
from zonda.api.schemas.secrets import SecretWrite
from zonda.core.permissions import Role
from zonda.db.engine import make_engine, write_txn
from zonda.db.migrate import upgrade
from zonda.db.schema import runs
from zonda.scheduler.wakeup import NullWaker
from zonda.services import pools, secrets
from zonda.services.context import Services
from zonda.services.runs import trigger_run
from zonda.settings import Settings

pytestmark = pytest.mark.xdist_group("fuzz")

TENANT = "team-a"
Fuzzed = tuple[FastAPI, dict[str, str]]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fuzz_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'zonda.db'}"
        return
    server = request.getfixturevalue("pg_server")
    url, name = fresh_pg_database(server)
    yield url
    drop_pg_database(server, name)


@pytest.fixture(scope="module")
def fuzz_app(fuzz_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    """The app over a DB with one tenant's DAG, run, pool and secret; tokens by caller."""
    engine = make_engine(fuzz_db)
    upgrade(engine)
    settings = Settings(home=tmp_path_factory.mktemp("home"), db_url=fuzz_db)
    tokens = {
        "superuser": user_token(engine, settings, "root", superuser=True),
        "viewer": user_token(engine, settings, "ann", {TENANT: Role.VIEWER}),
    }
    _seed(engine, settings)
    yield create_app(settings, engine=engine, waker=NullWaker()), tokens
    engine.dispose()


def _seed(engine: Engine, settings: Settings) -> None:
    svc = Services(engine=engine, settings=settings, waker=NullWaker())
    seed_etl(engine, TENANT)
    run_id = trigger_run(svc, f"{TENANT}/etl", TriggerRequest(key="fuzz")).run_id
    with write_txn(engine) as conn:
        conn.execute(update(runs).where(runs.c.run_id == run_id).values(state="running"))
    pools.set_pool(svc, TENANT, "shared", PoolSpec(slots=2))
    secrets.set_secret(svc, TENANT, "api_key", SecretWrite(value="v"))


def _spec_only_app() -> FastAPI:
    """An app over an engine that never connects: enough to serve the OpenAPI spec at collection time."""
    return create_app(
        Settings(home=Path("/nonexistent")), engine=create_engine("sqlite://"), waker=NullWaker()
    )


schema = schemathesis.openapi.from_asgi("/openapi.json", _spec_only_app())
FUZZ = settings(
    max_examples=20, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


@schema.parametrize()
@FUZZ
def test_as_a_superuser_no_request_fails_and_every_4xx_has_the_error_body(
    case: schemathesis.Case, fuzz_app: Fuzzed
) -> None:
    _call_and_check(case, *fuzz_app, "superuser")


@schema.parametrize()
@FUZZ
def test_as_a_viewer_no_request_fails_and_every_4xx_has_the_error_body(
    case: schemathesis.Case, fuzz_app: Fuzzed
) -> None:
    _call_and_check(case, *fuzz_app, "viewer")


def _call_and_check(case: schemathesis.Case, app: FastAPI, tokens: dict[str, str], caller: str) -> None:
    """No 5xx, whatever the request; a 4xx carries `{"error": {"code", "message", "details"}}`."""
    response = case.call(headers={"Authorization": f"Bearer {tokens[caller]}"}, app=app)
    where = f"{case.method} {case.formatted_path} -> {response.status_code}\n{case.as_curl_command()}"
    assert response.status_code < 500, f"{where}\n{response.text[:1000]}"
    if 400 <= response.status_code < 500:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        assert isinstance(error, dict) and set(error) == {"code", "message", "details"}, f"{where}\n{body}"
        assert isinstance(error["code"], str) and isinstance(error["message"], str), f"{where}\n{body}"


@dataclass(frozen=True)
class Finding:
    """A request the fuzzer once turned into a 500 on `backends`; it must be refused with a 4xx."""

    method: str
    path: str
    """`{run}` stands for the seeded run's id."""
    why: str
    body: Any = None
    query: dict[str, Any] = field(default_factory=dict)
    backends: frozenset[str] = frozenset({"sqlite", "postgres"})


PG = frozenset({"postgres"})
INT32, INT64 = 2**31, 2**63
NUL = "a\x00b"
NO_BOUND = "an integer beyond 32 bits overflowed its column"
NUL_TEXT = "PostgreSQL text cannot hold NUL characters"

FINDINGS = [
    Finding(
        "PATCH",
        f"/api/v1/tenants/{TENANT}",
        "TenantPatch accepted null for display_name, which is NOT NULL",
        {"display_name": None},
    ),
    Finding("POST", "/api/v1/tenants", NO_BOUND, {"tenant_id": "big", "max_active_runs": INT32}, backends=PG),
    Finding("POST", "/api/v1/tenants", NO_BOUND, {"tenant_id": "huge", "max_active_runs": INT64}),
    Finding("GET", f"/api/v1/dags/{TENANT}/etl/versions/{INT32}", NO_BOUND, backends=PG),
    Finding("GET", f"/api/v1/dags/{TENANT}/etl/versions/{INT64}", NO_BOUND),
    Finding(
        "GET", "/api/v1/runs/{run}/tasks/extract/logs", NO_BOUND, query={"map_index": INT32}, backends=PG
    ),
    Finding("GET", "/api/v1/runs/{run}/tasks/extract/logs", NO_BOUND, query={"map_index": INT64}),
    Finding(
        "GET",
        "/api/v1/runs",
        "a created_after near the end of year 9999 overflowed when converted to UTC",
        query={"created_after": "9999-12-31T23:59:59-05:00"},
    ),
    Finding("POST", f"/api/v1/dags/{TENANT}/etl/runs", NUL_TEXT, {"params": {}, "key": NUL}, backends=PG),
    Finding("GET", "/api/v1/runs", NUL_TEXT, query={"key": NUL}, backends=PG),
    Finding("GET", "/api/v1/runs", NUL_TEXT, query={"dag_id": NUL}, backends=PG),
    Finding("GET", "/api/v1/audit", NUL_TEXT, query={"actor": NUL}, backends=PG),
    Finding("POST", "/api/v1/tokens", NUL_TEXT, {"name": NUL}, backends=PG),
    Finding("POST", "/api/v1/tenants", NUL_TEXT, {"tenant_id": "nul", "display_name": NUL}, backends=PG),
]


@pytest.mark.parametrize(
    "finding", FINDINGS, ids=[f"{f.method} {f.path} {f.body or f.query}"[:90] for f in FINDINGS]
)
def test_what_the_fuzzer_found_is_not_a_server_error(
    finding: Finding, fuzz_app: Fuzzed, fuzz_db: str
) -> None:
    """Each request that once caused a server error is now refused with the error body."""
    app, tokens = fuzz_app
    backend = "postgres" if fuzz_db.startswith("postgresql") else "sqlite"
    headers = {"Authorization": f"Bearer {tokens['superuser']}"}
    with TestClient(app, headers=headers, raise_server_exceptions=False) as client:
        run_id = client.get("/api/v1/runs").json()["runs"][0]["run_id"]
        path = finding.path.replace("{run}", run_id)
        response = client.request(finding.method, path, json=finding.body, params=finding.query)
    assert 400 <= response.status_code < 500, (
        f"{backend}: {finding.why}: {response.status_code} {response.text}"
    )
    assert set(response.json()["error"]) == {"code", "message", "details"}, response.text


def test_the_spec_documents_the_error_body() -> None:
    components = _spec_only_app().openapi()["components"]["schemas"]
    assert set(components["ErrorBody"]["properties"]) == {"code", "message", "details"}
