"""Server time of the UI's heaviest pages: the DAG page's runs grid with 100 runs x 40 tasks, and the
run page of a run with 1,000 mapped task instances (each with an attempt).

Seeds those shapes into a temporary SQLite DB, then times the page handlers through Starlette's
TestClient (in-process: no network, the same code path as a real request) and prints p50 / p95 over
20 requests after 2 warm-ups. With `--write`, the figures go to docs/benchmarks.md between the
`<!-- results:ui:begin -->` / `<!-- results:ui:end -->` markers.

    .venv/bin/python -m benchmarks.ui_render [--requests 20] [--write]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from zonda.api.app import create_app
from zonda.api.routes.deps import SESSION_COOKIE
from zonda.core.spec import DagSpec, MapSource, TaskSpec
from zonda.db import identity
from zonda.db.dags import record_dag_version
from zonda.db.engine import make_engine, write_txn
from zonda.db.migrate import upgrade
from zonda.db.schema import runs, task_attempts, task_instances
from zonda.db.tenants import create_tenant
from zonda.scheduler.wakeup import NullWaker
from zonda.services.context import Services
from zonda.services.identity import issue_token
from zonda.settings import Settings

GRID_DAG = "default/grid_100x40"
MAPPED_DAG = "default/mapped_1000"
RUNS, TASKS, MAPPED = 100, 40, 1000
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- results:ui:begin -->", "<!-- results:ui:end -->"


def grid_spec() -> DagSpec:
    """40 tasks in 8 layers of 5, each depending on the whole previous layer."""
    tasks = []
    for i in range(TASKS):
        layer = i // 5
        upstream = tuple(f"t{j:02d}" for j in range((layer - 1) * 5, layer * 5)) if layer else ()
        tasks.append(TaskSpec(task_id=f"t{i:02d}", upstream=upstream))
    return DagSpec(dag_id=GRID_DAG, tasks=tuple(tasks), fileloc="/dags/grid.py", owner="bench")


def mapped_spec() -> DagSpec:
    """make_items -> process.map(items) (1,000 instances) -> summarize."""
    source = MapSource(arg="item", kind="task", ref="make_items")
    return DagSpec(
        dag_id=MAPPED_DAG,
        tasks=(
            TaskSpec(task_id="make_items"),
            TaskSpec(task_id="process", upstream=("make_items",), map_sources=(source,)),
            TaskSpec(task_id="summarize", upstream=("process",)),
        ),
        fileloc="/dags/mapped.py",
        owner="bench",
    )


def seed(engine: Engine, settings: Settings) -> tuple[str, str]:
    """The two DAGs, their runs, task instances and attempts; returns (a session token, the mapped run)."""
    now = datetime.now(UTC)
    with write_txn(engine) as conn:
        create_tenant(conn, "default", {"display_name": "Default", "dag_folders": []}, now)
        identity.create_user(conn, "bench", None, True, now)
        for spec in (grid_spec(), mapped_spec()):
            record_dag_version(
                conn, spec, "# source\n" * 50, hashlib.sha256(spec.to_json().encode()).hexdigest(), now
            )
        run_rows, ti_rows, attempt_rows = [], [], []
        for r in range(RUNS):
            run_id = f"grid-{r:03d}"
            start = now - timedelta(minutes=RUNS - r)
            run_rows.append(_run(run_id, GRID_DAG, start, "failed" if r % 7 == 0 else "success"))
            for i in range(TASKS):
                state = "failed" if r % 7 == 0 and i == 39 else "success"
                ti_rows.append(_ti(run_id, f"t{i:02d}", -1, state, start + timedelta(seconds=i)))
        mapped_run = "mapped-0001"
        run_rows.append(_run(mapped_run, MAPPED_DAG, now - timedelta(minutes=5), "success"))
        instances = [("make_items", -1), *(("process", i) for i in range(MAPPED)), ("summarize", -1)]
        for n, (task_id, index) in enumerate(instances):
            at = now - timedelta(minutes=5) + timedelta(milliseconds=20 * n)
            ti_rows.append(_ti(mapped_run, task_id, index, "success", at))
            attempt_rows.append(
                {k: v for k, v in _ti(mapped_run, task_id, index, "success", at).items() if k in _ATTEMPT}
            )
        conn.execute(insert(runs), run_rows)
        conn.execute(insert(task_instances), ti_rows)
        conn.execute(insert(task_attempts), attempt_rows)
    svc = Services(engine=engine, settings=settings, waker=NullWaker())
    return issue_token(svc, "bench", "bench").token, mapped_run


_ATTEMPT = {"run_id", "task_id", "map_index", "try_number", "state", "queued_at", "started_at", "ended_at"}


def _run(run_id: str, dag_id: str, start: datetime, state: str) -> dict[str, object]:
    return {
        "run_id": run_id,
        "tenant_id": "default",
        "dag_id": dag_id,
        "version": 1,
        "state": state,
        "key": f"customer-{run_id}",
        "params": {},
        "trigger": "api",
        "created_at": start,
        "started_at": start,
        "ended_at": start + timedelta(seconds=50),
    }


def _ti(run_id: str, task_id: str, index: int, state: str, at: datetime) -> dict[str, object]:
    return {
        "run_id": run_id,
        "task_id": task_id,
        "map_index": index,
        "state": state,
        "try_number": 1,
        "max_tries": 1,
        "queued_at": at,
        "started_at": at + timedelta(milliseconds=3),
        "ended_at": at + timedelta(milliseconds=15),
    }


@contextmanager
def seeded_client() -> Iterator[tuple[TestClient, str]]:
    """A TestClient over a fresh seeded SQLite DB, logged in as a superuser; yields it and the mapped run."""
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), db_url=f"sqlite:///{home}/zonda.db")
        engine = make_engine(settings.resolved_db_url)
        upgrade(engine)
        token, mapped_run = seed(engine, settings)
        with TestClient(create_app(settings, engine=engine, waker=NullWaker())) as client:
            client.cookies.set(SESSION_COOKIE, token)
            yield client, mapped_run
        engine.dispose()


def measure(client: TestClient, path: str, requests: int) -> tuple[float, float]:
    """(p50, p95) server time in ms of GET `path`, after two warm-up requests."""
    times = []
    for n in range(requests + 2):
        start = time.perf_counter()
        response = client.get(path)
        elapsed = (time.perf_counter() - start) * 1000
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        if n >= 2:
            times.append(elapsed)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--write", action="store_true", help="write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    with seeded_client() as (client, mapped_run):
        pages = [
            (f"DAG page, runs grid, {RUNS} runs x {TASKS} tasks", f"/dags/{GRID_DAG}"),
            (f"DAG page, graph of {TASKS} tasks with a run's states", f"/dags/{GRID_DAG}?tab=graph"),
            (f"Run page, {MAPPED} mapped instances (collapsed)", f"/runs/{mapped_run}"),
            (f"Run page, {MAPPED} mapped instances expanded", f"/runs/{mapped_run}?expand=process"),
            ("DAG list", "/dags"),
        ]
        rows = [(label, path, *measure(client, path, args.requests)) for label, path in pages]
    table = ["| page | path | p50 | p95 |", "| --- | --- | --- | --- |"]
    table += [f"| {label} | `{path}` | {p50:.1f} ms | {p95:.1f} ms |" for label, path, p50, p95 in rows]
    print("\n".join(table))
    if args.write:
        write_doc(table, args.requests)


def write_doc(table: list[str], requests: int) -> None:
    """Replace (or append) the UI section of docs/benchmarks.md."""
    day = datetime.now(UTC).date().isoformat()
    body = "\n".join(
        [
            BEGIN,
            "## UI page render time",
            "",
            f"`.venv/bin/python -m benchmarks.ui_render --write` ({day}, {platform.python_implementation()} "
            f"{platform.python_version()}, SQLite, in-process TestClient, {requests} requests after 2 warm-ups; "
            "target: under 200 ms of server time for the grid and the 1,000-instance run page; "
            f"1-minute load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs when it ended).",
            "",
            *table,
            END,
        ]
    )
    text = DOC.read_text()
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + body + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    DOC.write_text(text)


if __name__ == "__main__":
    main()
