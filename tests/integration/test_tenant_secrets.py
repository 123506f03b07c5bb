"""Tenant secrets on a real metadata DB (SQLite and PostgreSQL): encrypted at rest, write-only through the
API, scoped by role and tenant, rotated from one key to the next, and handed by a real scheduler to real
worker processes of their own tenant only."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from tests.doubles import RecordingWaker
from tests.identity import ensure_tenant, team_tokens, user_token
from tests.integration.server import serve_in_thread
from zonda.api.app import create_app
from zonda.api.schemas import TriggerRequest
from zonda.api.schemas.secrets import SecretKind, SecretWrite
from zonda.auth.keys import fernet
from zonda.cli.main import app as cli
from zonda.core.permissions import Role
from zonda.core.states import RunState
from zonda.dag_processing.processor import DagProcessor, TenantFolders
from zonda.db.engine import make_engine, read_txn, write_txn
from zonda.db.migrate import upgrade
from zonda.db.schema import audit_log, secrets
from zonda.db.tenants import create_tenant
from zonda.errors import ConfigError
from zonda.executors.registry import make_executor
from zonda.scheduler.loop import Scheduler
from zonda.scheduler.ownership import new_scheduler_id
from zonda.scheduler.secrets import TenantSecrets
from zonda.scheduler.wakeup import NullWaker, make_listener, make_waker
from zonda.services import runs
from zonda.services.context import Services
from zonda.services.secrets import rotate_secrets, set_secret
from zonda.settings import Settings
from zonda.worker.logs import log_path

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
VALUE = "pa55-w0rd-of-team-a"


@dataclass
class Api:
    client: TestClient
    engine: Engine
    settings: Settings
    waker: RecordingWaker
    tokens: dict[str, str] = field(default_factory=dict)

    def call(self, user: str | None, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return self.client.request(method, f"/api/v1/tenants/{path}", headers=headers, **kwargs)

    def put(self, user: str, tenant: str, name: str, value: str = VALUE, **body: Any) -> Any:
        return self.call(user, "PUT", f"{tenant}/secrets/{name}", json={"value": value, **body})


@pytest.fixture
def api(engine: Engine, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(home=tmp_path / "home", secret_keys=KEY_A)
    waker = RecordingWaker()
    with TestClient(create_app(settings, engine=engine, waker=waker)) as client:
        found = Api(client, engine, settings, waker)
        found.tokens = team_tokens(engine, settings)
        yield found


def stored_ciphertext(engine: Engine, tenant: str, name: str) -> str:
    with read_txn(engine) as conn:
        query = select(secrets.c.ciphertext).where(secrets.c.tenant_id == tenant, secrets.c.name == name)
        return str(conn.execute(query).scalar_one())


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], bool(error["message"]), "details" in error) == (code, True, True)


# Write-only through the API ------------------------------------------------------------------------


def test_an_admin_sets_a_secret_and_the_api_never_returns_its_value(api: Api) -> None:
    created = api.put("alice", "team-a", "warehouse", description="the DWH password")
    assert created.status_code == 200, created.text
    assert created.json() == {
        "tenant_id": "team-a",
        "name": "warehouse",
        "kind": "secret",
        "description": "the DWH password",
        "created_at": created.json()["created_at"],
        "updated_at": created.json()["updated_at"],
    }
    listed = api.call("vera", "GET", "team-a/secrets")
    one = api.call("vera", "GET", "team-a/secrets/warehouse")
    assert [s["name"] for s in listed.json()] == ["warehouse"]
    assert one.json()["description"] == "the DWH password"
    for response in (created, listed, one, api.call("root", "GET", "team-a/secrets")):
        assert VALUE not in response.text
    assert "secrets" in api.waker.topics


def test_the_value_is_stored_encrypted(api: Api) -> None:
    api.put("alice", "team-a", "dwh", "postgresql://etl:s3cret-pw@dwh.internal/prod", kind="connection")
    ciphertext = stored_ciphertext(api.engine, "team-a", "dwh")
    assert "s3cret-pw" not in ciphertext and "dwh.internal" not in ciphertext
    plain = fernet(api.settings).decrypt(ciphertext.encode()).decode()
    assert plain == "postgresql://etl:s3cret-pw@dwh.internal/prod"


def test_setting_again_replaces_the_value_and_keeps_the_creation_time(api: Api) -> None:
    first = api.put("alice", "team-a", "token", "first-value").json()
    second = api.put("alice", "team-a", "token", "second-value", description="v2").json()
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] >= first["updated_at"]
    ciphertext = stored_ciphertext(api.engine, "team-a", "token")
    assert fernet(api.settings).decrypt(ciphertext.encode()) == b"second-value"


@pytest.mark.parametrize(
    ("user", "method", "status"),
    [
        ("alice", "PUT", 200),
        ("alice", "DELETE", 204),
        ("root", "PUT", 200),
        ("olga", "GET", 200),
        ("olga", "PUT", 403),
        ("olga", "DELETE", 403),
        ("vera", "GET", 200),
        ("vera", "PUT", 403),
        ("vera", "DELETE", 403),
        ("bob", "GET", 404),
        ("bob", "PUT", 404),
        ("bob", "DELETE", 404),
        (None, "GET", 401),
        (None, "PUT", 401),
    ],
)
def test_admins_write_members_read_other_tenants_see_nothing(
    api: Api, user: str | None, method: str, status: int
) -> None:
    api.put("alice", "team-a", "token")
    body = {"json": {"value": "new-value"}} if method == "PUT" else {}
    response = api.call(user, method, "team-a/secrets/token", **body)
    assert response.status_code == status, response.text
    if status >= 400:
        assert_error(response, status, response.json()["error"]["code"])
        assert (
            fernet(api.settings).decrypt(stored_ciphertext(api.engine, "team-a", "token").encode())
            == VALUE.encode()
        )


def test_another_tenants_list_and_unknown_names_are_404(api: Api) -> None:
    api.put("alice", "team-a", "token")
    assert_error(api.call("bob", "GET", "team-a/secrets"), 404, "not_found")
    assert_error(api.call("alice", "GET", "team-a/secrets/nope"), 404, "not_found")
    assert_error(api.call("alice", "DELETE", "team-a/secrets/nope"), 404, "not_found")
    assert_error(api.call("root", "GET", "no-such-team/secrets"), 404, "not_found")
    assert api.call("bob", "GET", "team-b/secrets").json() == []


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        ("dwh", {"value": "not a uri", "kind": "connection"}, 422),
        ("dwh", {"value": ""}, 422),
        ("9lives", {"value": "x"}, 422),
        ("has-dash", {"value": "x"}, 422),
        ("TOKEN", {"value": "x"}, 409),
    ],
    ids=["connection-not-uri", "empty", "leading-digit", "dash", "case-twin"],
)
def test_bad_secrets_are_refused_with_a_reason(
    api: Api, name: str, body: dict[str, str], status: int
) -> None:
    api.put("alice", "team-a", "token")
    response = api.call("alice", "PUT", f"team-a/secrets/{name}", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]


def test_every_change_is_audited_without_the_value(api: Api) -> None:
    api.put("alice", "team-a", "token")
    api.call("alice", "DELETE", "team-a/secrets/token")
    with read_txn(api.engine) as conn:
        rows = conn.execute(
            select(audit_log).where(audit_log.c.action.like("secret.%")).order_by(audit_log.c.id)
        )
        entries = [(r.tenant_id, r.actor, r.action, r.target, r.details) for r in rows]
    assert entries == [
        ("team-a", "alice", "secret.set", "token", {"kind": "secret", "created": True}),
        ("team-a", "alice", "secret.delete", "token", {}),
    ]


# Key rotation --------------------------------------------------------------------------------------


def services(engine: Engine, tmp_path: Path, *keys: str) -> Services:
    settings = Settings(home=tmp_path / "home", secret_keys=",".join(keys))
    return Services(engine=engine, settings=settings, waker=NullWaker())


def decrypted(engine: Engine, svc: Services) -> dict[str, str] | None:
    cache = TenantSecrets(svc.settings)
    with read_txn(engine) as conn:
        cache.refresh(conn)
    found = cache.of("team-a")
    return dict(found) if found is not None else None


def test_rotation_to_a_new_key_keeps_every_value_readable(engine: Engine, tmp_path: Path) -> None:
    ensure_tenant(engine, "team-a")
    old = services(engine, tmp_path, KEY_A)
    set_secret(old, "team-a", "token", SecretWrite(value=VALUE))
    set_secret(old, "team-a", "dwh", SecretWrite(value="postgresql://u:p@h/db", kind=SecretKind.CONNECTION))
    before = stored_ciphertext(engine, "team-a", "token")

    assert rotate_secrets(services(engine, tmp_path, KEY_B, KEY_A)) == 2
    assert stored_ciphertext(engine, "team-a", "token") != before
    assert decrypted(engine, services(engine, tmp_path, KEY_B)) == {
        "token": VALUE,
        "dwh": "postgresql://u:p@h/db",
    }
    with read_txn(engine) as conn:
        audited = conn.execute(select(audit_log.c.details).where(audit_log.c.action == "secret.rotate")).all()
    assert [d for (d,) in audited] == [{"secrets": 2}]


def test_rotation_without_the_old_key_changes_nothing_and_says_why(engine: Engine, tmp_path: Path) -> None:
    ensure_tenant(engine, "team-a")
    set_secret(services(engine, tmp_path, KEY_A), "team-a", "token", SecretWrite(value=VALUE))
    before = stored_ciphertext(engine, "team-a", "token")
    with pytest.raises(ConfigError, match="add the old key back"):
        rotate_secrets(services(engine, tmp_path, KEY_B))
    assert stored_ciphertext(engine, "team-a", "token") == before
    assert decrypted(engine, services(engine, tmp_path, KEY_B)) == {}  # unreadable: left out, logged


# The CLI -------------------------------------------------------------------------------------------


runner = CliRunner()


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[tuple[str, Engine, Settings]]:
    """A real uvicorn server in a thread on a free port, over a fresh SQLite DB."""
    settings = Settings(
        home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'zonda.db'}", secret_keys=KEY_A
    )
    engine = make_engine(settings.resolved_db_url)
    upgrade(engine)
    with serve_in_thread(create_app(settings, engine=engine, waker=NullWaker())) as url:
        yield url, engine, settings
    engine.dispose()


def test_cli_sets_lists_and_deletes_without_ever_printing_the_value(
    server_url: tuple[str, Engine, Settings],
) -> None:
    url, engine, settings = server_url
    env = {"ZONDA_TOKEN": user_token(engine, settings, "alice", {"team-a": Role.ADMIN})}
    common = ["--tenant", "team-a", "--server", url]

    piped = runner.invoke(cli, ["secrets", "set", "token", *common], input=f"{VALUE}\n", env=env)
    assert piped.exit_code == 0, piped.output
    dsn = "postgresql://u:p@h/db"
    conn = runner.invoke(
        cli, ["secrets", "set", "dwh", "--kind", "connection", "--value", dsn, *common], env=env
    )
    assert conn.exit_code == 0, conn.output
    listed = runner.invoke(cli, ["secrets", "list", *common, "--json"], env=env)
    assert [(s["name"], s["kind"]) for s in json.loads(listed.stdout)] == [
        ("dwh", "connection"),
        ("token", "secret"),
    ]
    assert VALUE not in listed.output and dsn not in listed.output
    assert fernet(settings).decrypt(stored_ciphertext(engine, "team-a", "token").encode()) == VALUE.encode()

    bad = runner.invoke(
        cli, ["secrets", "set", "dwh", "--kind", "connection", "--value", "nope", *common], env=env
    )
    assert bad.exit_code == 1 and "a connection's value must be a URI" in bad.stderr
    gone = runner.invoke(cli, ["secrets", "delete", "token", *common], env=env)
    assert gone.exit_code == 0, gone.output
    assert "token" not in runner.invoke(cli, ["secrets", "list", *common], env=env).stdout


def test_cli_new_key_and_rotate(engine: Engine, db_url: str, tmp_path: Path) -> None:
    ensure_tenant(engine, "team-a")
    set_secret(services(engine, tmp_path, KEY_A), "team-a", "token", SecretWrite(value=VALUE))
    made = runner.invoke(cli, ["secrets", "new-key"])
    new = made.stdout.strip()
    assert Fernet(new.encode())  # a valid key
    env = {
        "ZONDA_DB_URL": db_url,
        "ZONDA_SECRET_KEYS": f"{new},{KEY_A}",
        "ZONDA_HOME": str(tmp_path / "home"),
    }
    rotated = runner.invoke(cli, ["secrets", "rotate"], env=env)
    assert rotated.exit_code == 0, rotated.output
    assert "1 secret(s) re-encrypted" in rotated.stdout
    assert decrypted(engine, services(engine, tmp_path, new)) == {"token": VALUE}


# Real workers: each task gets its own tenant's secrets and nothing else ------------------------------------


PROBE = """
import hashlib
import os

import zonda
from zonda import BashTask, dag, task
from zonda.sdk.secrets import SecretNotFoundError


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@task
def probe(expected: str, forbidden: str) -> None:
    own = zonda.secret("{own}")
    print("own secret is", own)
    assert sha(own) == expected, "this tenant's secret has the wrong value"
    try:
        zonda.secret("{other}")
    except SecretNotFoundError as exc:
        print("other tenant's secret:", exc)
    else:
        raise AssertionError("read another tenant's secret")
    named = [k for k in os.environ if k.startswith("ZONDA_SECRET_") and k != "ZONDA_SECRET_KEYS"]
    leaked = [k for k, v in os.environ.items() if sha(v) in (expected, forbidden)]
    assert not named and not leaked, (named, leaked)


@dag
def secrets_probe(expected: str, forbidden: str) -> None:
    probe(expected, forbidden)
    BashTask("bash_probe", command='echo "own=$ZONDA_SECRET_{OWN} other=${{ZONDA_SECRET_{OTHER}:-none}}"')
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Cluster:
    """A scheduler with real local worker processes, in a thread, over the test's metadata DB."""

    engine: Engine
    settings: Settings
    svc: Services

    def run(self, tenant: str, expected: str, forbidden: str) -> str:
        request = TriggerRequest(params={"expected": sha(expected), "forbidden": sha(forbidden)})
        run_id = runs.trigger_run(self.svc, f"{tenant}/secrets_probe", request).run_id
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            record = runs.get_run(self.svc, run_id)
            if RunState(record.state).finished:
                errors = {t.task_id: t.error for t in record.tasks if t.error}
                assert record.state == "success", errors
                return run_id
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} of {tenant} did not finish")

    def log(self, tenant: str, run_id: str, task_id: str) -> str:
        dag_id = f"{tenant}/secrets_probe"
        return Path(log_path(self.settings.resolved_log_url, dag_id, run_id, task_id, -1, 1)).read_text()


@pytest.fixture
def cluster(db_url: str, tmp_path: Path) -> Iterator[Cluster]:
    settings = Settings(
        home=tmp_path / "home", db_url=db_url, secret_keys=KEY_A, workers=1, safety_poll_interval=60
    )
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(db_url)
    svc = Services(engine=engine, settings=settings, waker=make_waker(settings, engine))
    for tenant, own, other in (("team-a", "a_secret", "b_secret"), ("team-b", "b_secret", "a_secret")):
        folder = tmp_path / tenant
        folder.mkdir()
        source = PROBE.format(own=own, other=other, OWN=own.upper(), OTHER=other.upper())
        (folder / "probe.py").write_text(source)
        with write_txn(engine) as conn:
            create_tenant(
                conn, tenant, {"display_name": tenant, "dag_folders": [str(folder)]}, datetime.now(UTC)
            )
        DagProcessor(settings, engine, NullWaker(), TenantFolders(tenant, (folder,))).process_once()
    scheduler_id = new_scheduler_id()
    scheduler = Scheduler(
        settings,
        engine,
        make_executor(settings, scheduler_id),
        make_listener(settings, engine),
        scheduler_id=scheduler_id,
    )
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.serve, args=(stop,), daemon=True)
    thread.start()
    yield Cluster(engine, settings, svc)
    stop.set()
    thread.join(30)
    engine.dispose()


def test_a_task_gets_its_own_tenants_secrets_and_never_another_tenants(cluster: Cluster) -> None:
    set_secret(cluster.svc, "team-a", "a_secret", SecretWrite(value="alpha-only-for-team-a"))
    set_secret(cluster.svc, "team-b", "b_secret", SecretWrite(value="bravo-only-for-team-b"))

    b_run = cluster.run("team-b", expected="bravo-only-for-team-b", forbidden="alpha-only-for-team-a")
    a_run = cluster.run("team-a", expected="alpha-only-for-team-a", forbidden="bravo-only-for-team-b")

    for tenant, run_id, value in (("team-a", a_run, "alpha"), ("team-b", b_run, "bravo")):
        python_log = cluster.log(tenant, run_id, "probe")
        assert "own secret is ***" in python_log and value not in python_log
        assert "is not set in this run's tenant" in python_log
        bash_log = cluster.log(tenant, run_id, "bash_probe")
        assert "own=*** other=none" in bash_log and value not in bash_log


def test_a_changed_secret_reaches_the_next_task_through_the_wake_up(cluster: Cluster) -> None:
    set_secret(cluster.svc, "team-a", "a_secret", SecretWrite(value="first-value-of-a"))
    cluster.run("team-a", expected="first-value-of-a", forbidden="none-at-all")
    set_secret(cluster.svc, "team-a", "a_secret", SecretWrite(value="second-value-of-a"))
    cluster.run("team-a", expected="second-value-of-a", forbidden="first-value-of-a")
