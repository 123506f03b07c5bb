"""Test helper: put DAGs into a metadata DB as the DAG processor would (rows in `dags` and `dag_versions`)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, insert, update

from zonda.core.ids import DEFAULT_TENANT, qualify, tenant_of
from zonda.db.engine import write_txn
from zonda.db.schema import dag_versions, dags, import_errors
from zonda.sdk.dag import DAG
from zonda.sdk.discovery import dags_in, load_module
from zonda.sdk.serialize import dag_to_spec

_modules = itertools.count()

ETL_SOURCE = """
from zonda import dag, task

@task
def extract(size: int) -> int:
    return size

@dag(schedule="@daily", start_date="2026-01-01")
def etl(size: int = 3):
    extract(size)
"""
"""A one-task DAG with a param and a schedule: the tenant DAG of the API-wide tests."""


def load_dags(source: str, fileloc: str) -> dict[str, DAG]:
    """The DAGs defined by `source`, imported under a fresh module name."""
    return dags_in(load_module(source, fileloc, f"zonda_test_dags_{next(_modules)}"))


def seed_dag(
    engine: Engine,
    dag: DAG,
    *,
    source: str = "",
    fileloc: str = "/dags/test.py",
    dag_id: str | None = None,
    tenant: str = DEFAULT_TENANT,
) -> int:
    """Store `dag` as a new latest version of `tenant` (optionally under another name); returns the version."""
    spec = dag_to_spec(dag, fileloc)
    name = dag_id or spec.dag_id
    spec = dataclasses.replace(spec, dag_id=name if "/" in name else qualify(tenant, name))
    now = datetime.now(UTC)
    with write_txn(engine) as conn:
        version = _next_version(conn, spec.dag_id)
        conn.execute(
            insert(dag_versions).values(
                dag_id=spec.dag_id,
                version=version,
                hash=hashlib.sha256(f"{spec.to_json()}{version}".encode()).hexdigest(),
                spec=spec.to_json(),
                source=source,
                fileloc=fileloc,
                created_at=now,
            )
        )
        _upsert_dag(conn, spec.dag_id, spec.schedule.describe() if spec.schedule else None, version, fileloc)
    return version


def seed_import_error(engine: Engine, fileloc: str, error: str, tenant: str = DEFAULT_TENANT) -> None:
    with write_txn(engine) as conn:
        conn.execute(
            insert(import_errors).values(
                tenant_id=tenant, fileloc=fileloc, error=error, recorded_at=datetime.now(UTC)
            )
        )


def _next_version(conn: Connection, dag_id: str) -> int:
    row = conn.execute(dags.select().where(dags.c.dag_id == dag_id)).first()
    return 1 if row is None else int(row.latest_version) + 1


def _upsert_dag(conn: Connection, dag_id: str, schedule: str | None, version: int, fileloc: str) -> None:
    now = datetime.now(UTC)
    if version > 1:
        conn.execute(
            update(dags).where(dags.c.dag_id == dag_id).values(latest_version=version, updated_at=now)
        )
        return
    conn.execute(
        insert(dags).values(
            dag_id=dag_id,
            tenant_id=tenant_of(dag_id),
            fileloc=fileloc,
            latest_version=version,
            paused=False,
            active=True,
            owner="data-team",
            description="",
            tags=["test"],
            schedule=schedule,
            timezone="UTC",
            next_fire_at=None,
            created_at=now,
            updated_at=now,
        )
    )


def seed_etl(engine: Engine, tenant: str) -> None:
    """`ETL_SOURCE` as `tenant/etl`, from the file `/dags/<tenant>/etl.py`."""
    fileloc = f"/dags/{tenant}/etl.py"
    for dag in load_dags(ETL_SOURCE, fileloc).values():
        seed_dag(engine, dag, source=ETL_SOURCE, fileloc=fileloc, tenant=tenant)
