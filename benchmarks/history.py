"""W4's history: 10,000 DAG versions and 1,000,000 ended task instances written into a running
server's metadata DB, so that W1 runs again on a DB that has served for months (BENCHMARKS.md W4).

The rows are what Zonda itself writes: versions of 500 retired DAGs (the onboarding DAG's spec and
source under other ids, 20 versions each), and 25,000 ended runs of `onboarding_40x20` itself, each
with its 40 task instances, one attempt each and a small inline output, created over the 30 days
before now. On PostgreSQL the DB is then vacuumed, analyzed and checkpointed, as autovacuum and the
checkpointer do within minutes of such inserts (long before a DB that grew over months is
measured); SQLite gets no statistics, as a Zonda DB on SQLite has none.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, insert, select, text

from benchmarks import workloads
from zonda.core.spec import DagSpec
from zonda.db.engine import make_engine, write_txn
from zonda.db.schema import dag_versions, dags, runs, task_attempts, task_instances

VERSIONS = 10_000
TASK_INSTANCES = 1_000_000
RETIRED_DAGS = 500
SPAN = timedelta(days=30)
CHUNK = 20_000
"""Rows per write transaction, so that the server's own writes are never held up for long."""
OUTPUT = json.dumps({"user_id": 1, "lane": 0, "stage": 7, "hops": 128}).encode()


@dataclass(frozen=True)
class Seeded:
    """What the history holds and how long it took to write."""

    versions: int
    runs: int
    task_instances: int
    seconds: float


def seed(db_url: str, versions: int = VERSIONS, instances: int = TASK_INSTANCES) -> Seeded:
    """Write the history into the DB at `db_url` (a server's, with its DAGs parsed)."""
    began = time.monotonic()
    engine = make_engine(db_url)
    try:
        dag_id, version, spec, source = _onboarding(engine)
        task_ids = [t.task_id for t in DagSpec.from_json(spec).tasks]
        _write_versions(engine, spec, source, versions)
        run_count = instances // len(task_ids)
        _write_runs(engine, dag_id, version, task_ids, run_count)
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                autocommit = conn.execution_options(isolation_level="AUTOCOMMIT")
                autocommit.execute(text("VACUUM ANALYZE"))
                autocommit.execute(text("CHECKPOINT"))
    finally:
        engine.dispose()
    return Seeded(versions, run_count, run_count * len(task_ids), time.monotonic() - began)


def _onboarding(engine: Engine) -> tuple[str, int, str, str]:
    """The onboarding DAG's id, latest version, spec text and source, as the server stored them."""
    with engine.connect() as conn:
        row = conn.execute(
            select(dag_versions.c.version, dag_versions.c.spec, dag_versions.c.source)
            .where(dag_versions.c.dag_id == workloads.ONBOARDING)
            .order_by(dag_versions.c.version.desc())
            .limit(1)
        ).one()
    return workloads.ONBOARDING, int(row.version), str(row.spec), str(row.source)


def _write_versions(engine: Engine, spec: str, source: str, count: int) -> None:
    """`count` versions of retired DAGs `{tenant}/retired_{n}`, `count // RETIRED_DAGS` each."""
    per_dag = max(1, count // RETIRED_DAGS)
    now = datetime.now(UTC)
    tenant = workloads.TENANT
    dag_rows: list[dict[str, Any]] = []
    version_rows: list[dict[str, Any]] = []
    for n in range(max(1, count // per_dag)):
        dag_id = f"{tenant}/retired_{n:04d}"
        created = now - SPAN + timedelta(seconds=n)
        dag_rows.append(
            {
                "dag_id": dag_id,
                "tenant_id": tenant,
                "fileloc": f"/gone/retired_{n:04d}.py",
                "latest_version": per_dag,
                "paused": False,
                "active": False,
                "owner": "",
                "description": "",
                "tags": [],
                "schedule": None,
                "timezone": "UTC",
                "next_fire_at": None,
                "created_at": created,
                "updated_at": created,
            }
        )
        for v in range(1, per_dag + 1):
            text_v = _respec(spec, dag_id, v)
            version_rows.append(
                {
                    "dag_id": dag_id,
                    "version": v,
                    "hash": hashlib.sha256(text_v.encode()).hexdigest(),
                    "spec": text_v,
                    "source": f"{source}\n# version {v}\n",
                    "fileloc": f"/gone/retired_{n:04d}.py",
                    "created_at": created + timedelta(hours=v),
                }
            )
    _insert(engine, dags, dag_rows)
    _insert(engine, dag_versions, version_rows)


def _respec(spec: str, dag_id: str, version: int) -> str:
    return replace(DagSpec.from_json(spec), dag_id=dag_id, description=f"version {version}").to_json()


def _write_runs(engine: Engine, dag_id: str, version: int, task_ids: list[str], count: int) -> None:
    """`count` ended runs of `dag_id`, spread over SPAN before now, 2 % failed in their last task."""
    end_of_history = datetime.now(UTC) - timedelta(hours=1)
    step = SPAN / max(1, count)
    tenant = workloads.TENANT
    per_txn = max(1, CHUNK // len(task_ids))
    for first in range(0, count, per_txn):
        last = min(count, first + per_txn)
        run_rows, ti_rows, attempt_rows = [], [], []
        for n in range(first, last):
            created = end_of_history - SPAN + step * n
            failed = n % 50 == 0
            run_id = f"hist-{n:08d}"
            run_rows.append(
                {
                    "run_id": run_id,
                    "tenant_id": tenant,
                    "dag_id": dag_id,
                    "version": version,
                    "state": "failed" if failed else "success",
                    "key": f"history-{n}",
                    "params": {"user_id": n},
                    "trigger": "api",
                    "logical_date": None,
                    "created_at": created,
                    "started_at": created + timedelta(milliseconds=5),
                    "ended_at": created + timedelta(milliseconds=400),
                    "owner": None,
                    "lease_until": None,
                }
            )
            for i, task_id in enumerate(task_ids):
                state = "failed" if failed and i == len(task_ids) - 1 else "success"
                queued = created + timedelta(milliseconds=5 + 10 * (i // 5))
                started = queued + timedelta(milliseconds=2)
                ended = started + timedelta(milliseconds=3)
                ti_rows.append(
                    {
                        **_ti_key(run_id, task_id),
                        "state": state,
                        "try_number": 1,
                        "max_tries": 1,
                        "queued_at": queued,
                        "started_at": started,
                        "ended_at": ended,
                        "next_try_at": None,
                        "output_serializer": None if state == "failed" else "json",
                        "output_size": None if state == "failed" else len(OUTPUT),
                        "output_data": None if state == "failed" else OUTPUT,
                        "output_uri": None,
                        "output_length": None,
                        "error": "ValueError: bad input" if state == "failed" else None,
                    }
                )
                attempt_rows.append(
                    {
                        **_ti_key(run_id, task_id),
                        "try_number": 1,
                        "state": state,
                        "queued_at": queued,
                        "started_at": started,
                        "ended_at": ended,
                        "error": "ValueError: bad input" if state == "failed" else None,
                    }
                )
        with write_txn(engine) as conn:
            conn.execute(insert(runs), run_rows)
            conn.execute(insert(task_instances), ti_rows)
            conn.execute(insert(task_attempts), attempt_rows)


def _ti_key(run_id: str, task_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "task_id": task_id, "map_index": -1}


def _insert(engine: Engine, table: Any, rows: list[dict[str, Any]]) -> None:
    for chunk in _chunks(rows, CHUNK // 4):
        with write_txn(engine) as conn:
            conn.execute(insert(table), chunk)


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def counts(db_url: str) -> dict[str, int]:
    """Rows in the tables the history fills (to report what W4 ran on)."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return {
                table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for table in (dag_versions, runs, task_instances, task_attempts)
            }
    finally:
        engine.dispose()
