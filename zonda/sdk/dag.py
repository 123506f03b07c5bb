"""`@dag`: turns a function that calls tasks into a DAG; the function's arguments are the params."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, overload

from pydantic import BaseModel

from zonda.core.spec import ScheduleSpec
from zonda.errors import DagDefinitionError
from zonda.sdk.graph import GraphBuilder, TaskNode, building, topological_order
from zonda.sdk.params import params_model
from zonda.sdk.refs import ParamRef


@dataclass(frozen=True)
class DagOptions:
    """Options of a DAG, as written in `@dag(...)`."""

    schedule: str | ScheduleSpec | None = None
    timezone: str = "UTC"
    start_date: datetime | str | None = None
    catchup: bool = False
    max_active_runs: int = 16
    max_active_tasks: int = 64
    tags: tuple[str, ...] = ()
    owner: str = ""
    description: str = ""


class DAG:
    """A built DAG: its tasks in topological order, options and params model."""

    def __init__(self, dag_id: str, fn: Callable[..., Any], options: DagOptions) -> None:
        if "/" in dag_id or not dag_id:
            raise DagDefinitionError(
                f"DAG id {dag_id!r} must be non-empty and without '/': Zonda adds the tenant itself (team-a/{dag_id})"
            )
        self.dag_id = dag_id
        self.fn = fn
        self.options = options
        self.params: type[BaseModel] = params_model(fn, dag_id)
        builder = GraphBuilder(dag_id)
        refs = {name: ParamRef(name) for name in inspect.signature(fn).parameters}
        with building(builder):
            fn(**refs)
        if not builder.nodes:
            raise DagDefinitionError(f"DAG '{dag_id}' has no tasks: call at least one @task inside it")
        _check_edges(dag_id, builder.nodes)
        order = topological_order(builder.nodes, dag_id)
        self.nodes: dict[str, TaskNode] = {task_id: builder.nodes[task_id] for task_id in order}

    @property
    def description(self) -> str:
        return self.options.description or inspect.getdoc(self.fn) or ""

    def __repr__(self) -> str:
        return f"DAG({self.dag_id!r}, tasks={len(self.nodes)})"


def _check_edges(dag_id: str, nodes: dict[str, TaskNode]) -> None:
    for node in nodes.values():
        for up in node.upstream:
            if up not in nodes:
                raise DagDefinitionError(
                    f"DAG '{dag_id}': task '{node.task_id}' depends on '{up}', which belongs to another DAG"
                )


@overload
def dag(fn: Callable[..., Any], /) -> DAG: ...


@overload
def dag(
    fn: None = None,
    /,
    *,
    dag_id: str | None = None,
    schedule: str | ScheduleSpec | None = None,
    timezone: str = "UTC",
    start_date: datetime | str | None = None,
    catchup: bool = False,
    max_active_runs: int = 16,
    max_active_tasks: int = 64,
    tags: Iterable[str] = (),
    owner: str = "",
    description: str = "",
) -> Callable[[Callable[..., Any]], DAG]: ...


def dag(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    dag_id: str | None = None,
    schedule: str | ScheduleSpec | None = None,
    timezone: str = "UTC",
    start_date: datetime | str | None = None,
    catchup: bool = False,
    max_active_runs: int = 16,
    max_active_tasks: int = 64,
    tags: Iterable[str] = (),
    owner: str = "",
    description: str = "",
) -> DAG | Callable[[Callable[..., Any]], DAG]:
    """Declare a DAG. `schedule` takes cron, a preset such as "@daily", or `every("10s")`."""
    options = DagOptions(
        schedule,
        timezone,
        start_date,
        catchup,
        max_active_runs,
        max_active_tasks,
        tuple(tags),
        owner,
        description,
    )

    def wrap(f: Callable[..., Any]) -> DAG:
        return DAG(dag_id or f.__name__, f, options)

    return wrap(fn) if fn is not None else wrap
