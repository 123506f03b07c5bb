"""Views over many task instances at once, for the web UI: a DAG's runs grid, the recent runs of each
DAG, and a run with every attempt (Gantt). Each reads in one transaction with a fixed number of
queries, so a page costs the same for 10 or 1,000 task instances."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zonda.api.schemas import RunRecord, RunSummary
from zonda.core.ids import split_dag_id
from zonda.core.permissions import Action
from zonda.db import run_history as db
from zonda.db.dags import get_version
from zonda.db.engine import read_txn
from zonda.db.runs import list_runs
from zonda.errors import NotFoundError
from zonda.services.access import visible
from zonda.services.dags import check_dag
from zonda.services.runs import require_run

if TYPE_CHECKING:
    from zonda.core.spec import DagSpec
    from zonda.db.run_history import AttemptSpan, RecentRun
    from zonda.services.context import Services


EXPAND_LIMIT = 200
"""Rows an expanded mapped task shows in the grid (its first map indexes); the run page lists all."""


@dataclass(frozen=True)
class Grid:
    """A DAG's newest runs (newest first) and, per run and task, the count of instances per state."""

    runs: list[RunSummary]
    cells: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    task_ids: list[str] = field(default_factory=list)
    """Tasks of the DAG's latest version first (in its order), then tasks only older runs had."""
    instances: dict[str, dict[tuple[str, int], str]] = field(default_factory=dict)
    """For each expanded mapped task: the state of each (run, map index), up to `EXPAND_LIMIT` indexes."""


@dataclass(frozen=True)
class RunDetail:
    """A run with its pinned spec (None if its version row is gone) and every finished attempt."""

    run: RunRecord
    spec: DagSpec | None
    attempts: list[AttemptSpan]


def dag_grid(
    svc: Services, dag_id: str, spec: DagSpec | None, limit: int = 100, expand: Sequence[str] = ()
) -> Grid:
    """The grid of the DAG's newest `limit` runs; `spec` (the latest version's) orders the rows.

    Each task of `expand` also gets its instances' states, one row per map index.
    """
    check_dag(svc, dag_id, Action.READ)
    with read_txn(svc.engine) as conn:
        page = list_runs(conn, dag_id=dag_id, limit=max(1, min(limit, 500)))
        run_ids = [r.run_id for r in page.runs]
        states = db.cell_states(conn, run_ids)
        instances = {
            task_id: {
                (r, i): state for r, i, state in db.instance_states(conn, run_ids, task_id, EXPAND_LIMIT)
            }
            for task_id in dict.fromkeys(expand)
        }
    cells: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for c in states:
        cells[(c.run_id, c.task_id)][c.state] = c.count
    order = [t.task_id for t in spec.tasks] if spec else []
    extra = sorted({c.task_id for c in states} - set(order))
    return Grid(runs=page.runs, cells=dict(cells), task_ids=order + extra, instances=instances)


def recent_runs(svc: Services, dag_ids: list[str], per_dag: int = 10) -> dict[str, list[RecentRun]]:
    """The newest `per_dag` runs of each of `dag_ids` the caller may see, newest first."""
    tenants = visible(svc)
    shown = [d for d in dag_ids if tenants is None or split_dag_id(d)[0] in tenants]
    with read_txn(svc.engine) as conn:
        rows = db.recent_runs(conn, shown, per_dag)
    found: dict[str, list[RecentRun]] = defaultdict(list)
    for r in rows:
        found[r.dag_id].append(r)
    return dict(found)


def run_detail(svc: Services, run_id: str) -> RunDetail:
    """A run, its pinned spec and its attempts; NotFoundError if the caller may not see it."""
    with read_txn(svc.engine) as conn:
        run = require_run(svc, conn, run_id, Action.READ)
        version = get_version(conn, run.dag_id, run.dag_version)
        attempts = db.run_attempts(conn, run_id)
    return RunDetail(run=run, spec=version.spec if version else None, attempts=attempts)


def version_spec(svc: Services, dag_id: str, version: int) -> DagSpec:
    """The spec of one version of a DAG (its graph); NotFoundError if there is no such version."""
    check_dag(svc, dag_id, Action.READ)
    with read_txn(svc.engine) as conn:
        found = get_version(conn, dag_id, version)
    if found is None:
        raise NotFoundError(f"DAG '{dag_id}' has no version {version}")
    return found.spec
