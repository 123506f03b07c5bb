"""Each tenant's DAG files are processed on their own: namespaced ids, and a slow file delays no other tenant."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.identity import ensure_tenant
from zonda.dag_processing.tenants import TenantProcessors
from zonda.db import dags as db
from zonda.db.engine import read_txn
from zonda.scheduler.wakeup import NullWaker
from zonda.settings import Settings

GOOD = """
from zonda import dag, task

@task
def hello() -> str:
    return "hi"

@dag
def {name}():
    hello()
"""

SLOW = """
import time
time.sleep(60)
"""


def folder(root: Path, tenant: str, files: dict[str, str]) -> str:
    path = root / tenant
    path.mkdir()
    for name, text in files.items():
        (path / name).write_text(text)
    return str(path)


@pytest.fixture
def processors(engine: Engine, tmp_path: Path) -> Iterator[TenantProcessors]:
    settings = Settings(home=tmp_path / "home", parse_interval=0.2, parse_timeout=8)
    found = TenantProcessors(settings, engine, NullWaker())
    stop = threading.Event()
    thread = threading.Thread(target=found.run_forever, args=(stop,), daemon=True)
    thread.start()
    yield found
    stop.set()
    thread.join(30)


def dag_ids(engine: Engine) -> set[str]:
    with read_txn(engine) as conn:
        return {d.dag_id for d in db.list_dags(conn)}


def wait_for(check: object, timeout: float) -> float:
    """Seconds until `check()` is true (AssertionError after `timeout`)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not true after {timeout} s")


def test_same_dag_name_in_two_tenants_are_two_dags(
    engine: Engine, tmp_path: Path, processors: TenantProcessors
) -> None:
    for tenant in ("team-a", "team-b"):
        ensure_tenant(
            engine, tenant, dag_folders=[folder(tmp_path, tenant, {"etl.py": GOOD.format(name="etl")})]
        )
    wait_for(lambda: dag_ids(engine) == {"team-a/etl", "team-b/etl"}, 30)
    with read_txn(engine) as conn:
        assert {d.tenant_id for d in db.list_dags(conn, tenants=frozenset({"team-b"}))} == {"team-b"}


def test_a_slow_file_of_one_tenant_delays_no_other_tenant(
    engine: Engine, tmp_path: Path, processors: TenantProcessors
) -> None:
    slow = folder(tmp_path, "team-a", {"slow.py": SLOW, "etl.py": GOOD.format(name="etl")})
    ensure_tenant(engine, "team-a", dag_folders=[slow])
    time.sleep(1.0)  # team-a's pass is now stuck on slow.py (8 s timeout)
    ensure_tenant(engine, "team-b", dag_folders=[folder(tmp_path, "team-b", {"b.py": GOOD.format(name="b")})])
    waited = wait_for(lambda: "team-b/b" in dag_ids(engine), 15)
    assert waited < 5, f"team-b waited {waited:.1f} s behind team-a's slow file"


def test_a_broken_file_is_an_import_error_of_its_tenant_only(
    engine: Engine, tmp_path: Path, processors: TenantProcessors
) -> None:
    ensure_tenant(
        engine, "team-a", dag_folders=[folder(tmp_path, "team-a", {"bad.py": "from zonda import dag\n1/0\n"})]
    )
    ensure_tenant(engine, "team-b", dag_folders=[folder(tmp_path, "team-b", {"b.py": GOOD.format(name="b")})])

    def errors_of(tenant: str) -> list[str]:
        with read_txn(engine) as conn:
            return [e.error for e in db.list_import_errors(conn, frozenset({tenant}))]

    wait_for(lambda: bool(errors_of("team-a")) and "team-b/b" in dag_ids(engine), 30)
    assert "ZeroDivisionError" in errors_of("team-a")[0]
    assert errors_of("team-b") == []


SNOOP = """
import os
from zonda import dag, task

SEEN = ",".join(sorted(k for k in os.environ if k in ("ZONDA_SECRET_KEYS", "ZONDA_DB_URL", "ZONDA_SECRET_X")))

@task
def hello() -> str:
    return "hi"

@dag(description="saw:" + (SEEN or "nothing"))
def snoop():
    hello()
"""


def test_a_dag_file_is_imported_without_the_server_credentials(
    engine: Engine, tmp_path: Path, processors: TenantProcessors, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZONDA_SECRET_KEYS", "server-key")
    monkeypatch.setenv("ZONDA_DB_URL", "postgresql://server")
    monkeypatch.setenv("ZONDA_SECRET_X", "value")
    ensure_tenant(engine, "team-a", dag_folders=[folder(tmp_path, "team-a", {"snoop.py": SNOOP})])
    wait_for(lambda: "team-a/snoop" in dag_ids(engine), 30)
    with read_txn(engine) as conn:
        assert db.get_dag(conn, "team-a/snoop").description == "saw:nothing"  # type: ignore[union-attr]
