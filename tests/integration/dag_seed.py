"""Test helper: put DAGs into a metadata DB as the DAG processor would (rows in `dags` and `dag_versions`)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, insert, update

from zonda.db.engine import write_txn
from zonda.db.schema import dag_versions, dags, import_errors
from zonda.sdk.dag import DAG
from zonda.sdk.discovery import dags_in, load_module
from zonda.sdk.serialize import dag_to_spec

_modules = itertools.count()


def load_dags(source: str, fileloc: str) -> dict[str, DAG]:
    """The DAGs defined by `source`, imported under a fresh module name."""
    return dags_in(load_module(source, fileloc, f"zonda_test_dags_{next(_modules)}"))


def seed_dag(
    engine: Engine, dag: DAG, *, source: str = "", fileloc: str = "/dags/test.py", dag_id: str | None = None
) -> int:
    """Store `dag` as a new latest version (optionally under another id); returns the version number."""
    spec = dag_to_spec(dag, fileloc)
    if dag_id is not None:
        spec = dataclasses.replace(spec, dag_id=dag_id)
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


def seed_import_error(engine: Engine, fileloc: str, error: str) -> None:
    with write_txn(engine) as conn:
        conn.execute(
            insert(import_errors).values(fileloc=fileloc, error=error, recorded_at=datetime.now(UTC))
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
