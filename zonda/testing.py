"""Helpers for users' own tests of their DAGs and tasks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from zonda.api.schemas import RunRecord
from zonda.inprocess import run_locally
from zonda.sdk.context import TaskContext, bound_context
from zonda.sdk.dag import DAG
from zonda.sdk.secrets import task_secrets


@contextmanager
def task_context(
    *,
    run_id: str = "test-run",
    dag_id: str = "test-dag",
    task_id: str = "test-task",
    try_number: int = 1,
    map_index: int = -1,
    params: Mapping[str, Any] | None = None,
    key: str | None = None,
    logical_date: datetime | None = None,
    secrets: Mapping[str, str] | None = None,
) -> Iterator[TaskContext]:
    """Call a task function directly with a `zonda.context()` (and secrets) of your choosing."""
    ctx = TaskContext(run_id, dag_id, task_id, try_number, map_index, dict(params or {}), key, logical_date)
    with bound_context(ctx), task_secrets(dict(secrets or {})):
        yield ctx


def run_dag(dag: DAG, params: Mapping[str, Any] | None = None, *, key: str | None = None) -> RunRecord:
    """Run a whole DAG in this process with the server's semantics and return its run record."""
    return run_locally(dag, params, key=key)
