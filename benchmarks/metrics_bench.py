"""How long the latency dashboard takes to answer over a busy week, on SQLite or PostgreSQL.

Seeds a fresh DB with `--runs` runs of the W1 DAG (40 tasks in 8 stages of 5) spread over the
last `--days` days (2,500 runs = 100,000 task instances), 5 % of the instances retried once and
10 % of the runs failed, then times `services.metrics.latency_report` over that whole window.

    .venv/bin/python -m benchmarks.metrics_bench [--runs 2500] [--days 7] [--db-url URL] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert

from zonda.core.spec import DagSpec, TaskSpec
from zonda.db.dags import record_dag_version
from zonda.db.engine import make_engine, write_txn
from zonda.db.migrate import upgrade
from zonda.db.schema import runs, task_attempts, task_instances
from zonda.db.tenants import create_tenant
from zonda.scheduler.wakeup import NullWaker
from zonda.services.context import Services
from zonda.services.metrics import latency_report
from zonda.settings import Settings

DAG_ID = "bench/onboarding"


def w1_spec() -> DagSpec:
    """The W1 DAG: `s{k}_{i}` depends on `s{k-1}_{i}` and `s{k-1}_{(i+1)%5}`."""
    tasks = [
        TaskSpec(f"s{k}_{i}", upstream=() if k == 0 else (f"s{k - 1}_{i}", f"s{k - 1}_{(i + 1) % 5}"))
        for k in range(8)
        for i in range(5)
    ]
    return DagSpec(dag_id=DAG_ID, tasks=tuple(tasks))


def seed(engine: Engine, run_count: int, days: float, now: datetime) -> None:
    """Store the DAG and `run_count` finished runs spread evenly over the last `days` days."""
    rng = random.Random(7)
    spec = w1_spec()
    with write_txn(engine) as conn:
        create_tenant(conn, "bench", {}, now)
        record_dag_version(conn, spec, "", "w1", now)
    step = timedelta(days=days) / run_count
    for first in range(0, run_count, 250):
        with write_txn(engine) as conn:
            for n in range(first, min(first + 250, run_count)):
                _seed_run(conn, spec, f"run-{n:06d}", now - timedelta(days=days) + n * step, rng)


def _seed_run(conn: Connection, spec: DagSpec, run_id: str, created: datetime, rng: random.Random) -> None:
    ends: dict[str, datetime] = {}
    instances: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    for task in spec.tasks:
        ready = max((ends[u] for u in task.upstream), default=created)
        queued = ready + timedelta(milliseconds=rng.uniform(1, 5))
        started = queued + timedelta(milliseconds=rng.uniform(0.5, 3))
        tries = 2 if rng.random() < 0.05 else 1
        for try_number in range(1, tries):
            failed_end = started + timedelta(milliseconds=rng.uniform(5, 50))
            attempts.append(
                _attempt(run_id, task.task_id, try_number, "up_for_retry", queued, started, failed_end)
            )
            queued = failed_end + timedelta(seconds=1)
            started = queued + timedelta(milliseconds=rng.uniform(0.5, 3))
        ended = started + timedelta(milliseconds=rng.uniform(5, 50))
        ends[task.task_id] = ended
        attempts.append(_attempt(run_id, task.task_id, tries, "success", queued, started, ended))
        instances.append(
            {
                "run_id": run_id,
                "task_id": task.task_id,
                "map_index": -1,
                "state": "success",
                "try_number": tries,
                "max_tries": 2,
                "queued_at": queued,
                "started_at": started,
                "ended_at": ended,
            }
        )
    conn.execute(
        insert(runs).values(
            run_id=run_id,
            tenant_id="bench",
            dag_id=DAG_ID,
            version=1,
            state="failed" if rng.random() < 0.1 else "success",
            params={},
            trigger="manual",
            created_at=created,
            started_at=created + timedelta(milliseconds=1),
            ended_at=max(ends.values()),
        )
    )
    conn.execute(insert(task_instances), instances)
    conn.execute(insert(task_attempts), attempts)


def _attempt(
    run_id: str,
    task_id: str,
    try_number: int,
    state: str,
    queued: datetime,
    started: datetime,
    ended: datetime,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "task_id": task_id,
        "map_index": -1,
        "try_number": try_number,
        "state": state,
        "queued_at": queued,
        "started_at": started,
        "ended_at": ended,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=2500)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--db-url", default="", help="an empty DB (default: a new SQLite file)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        url = args.db_url or f"sqlite:///{Path(home) / 'zonda.db'}"
        engine = make_engine(url)
        upgrade(engine)
        now = datetime.now(UTC)
        started = time.perf_counter()
        seed(engine, args.runs, args.days, now)
        print(
            f"seeded {args.runs} runs, {args.runs * 40} task instances in {time.perf_counter() - started:.1f} s"
        )
        svc = Services(engine=engine, settings=Settings(home=Path(home), db_url=url), waker=NullWaker())
        timings, cpu = [], []
        for _ in range(args.repeat):
            started, started_cpu = time.perf_counter(), time.process_time()
            report = latency_report(svc, since=now - timedelta(days=args.days), until=now)
            timings.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        total = report.total
        print(
            f"latency_report over {args.days:g} days ({report.bucket} buckets): "
            f"median {statistics.median(timings) * 1000:.0f} ms, min {min(timings) * 1000:.0f} ms, "
            f"max {max(timings) * 1000:.0f} ms over {args.repeat} calls; "
            f"CPU time median {statistics.median(cpu) * 1000:.0f} ms; load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"  transitions {total.transition_ms.count}, attempts {total.queue_wait_ms.count}, "
            f"runs ended {total.runs_ended}, transition p50/p99 {total.transition_ms.p50}/"
            f"{total.transition_ms.p99} ms"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
