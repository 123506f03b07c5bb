"""The graph a `@dag` function builds: task nodes, their bound arguments and their edges."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zonda.errors import DagCycleError
from zonda.sdk.refs import ParamRef, TaskRef, walk_refs

if TYPE_CHECKING:
    from zonda.sdk.task import Task


@dataclass
class TaskNode:
    """One call of a task inside a DAG function: the task, its arguments and its upstream tasks."""

    task_id: str
    task: Task
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    mapped: dict[str, Any] = field(default_factory=dict)
    order_upstream: set[str] = field(default_factory=set)

    @property
    def data_upstream(self) -> list[str]:
        """Tasks whose return values this node receives, in argument order, without repeats."""
        seen: dict[str, None] = {}
        for value in (*self.args, *self.kwargs.values(), *self.mapped.values()):
            for ref in walk_refs(value):
                if isinstance(ref, TaskRef):
                    seen.setdefault(ref.task_id, None)
        return list(seen)

    @property
    def upstream(self) -> list[str]:
        data = self.data_upstream
        return data + sorted(self.order_upstream.difference(data))

    @property
    def params_used(self) -> set[str]:
        values = (*self.args, *self.kwargs.values(), *self.mapped.values())
        return {ref.name for v in values for ref in walk_refs(v) if isinstance(ref, ParamRef)}


class GraphBuilder:
    """Collects the nodes created while a DAG function runs."""

    def __init__(self, dag_id: str) -> None:
        self.dag_id = dag_id
        self.nodes: dict[str, TaskNode] = {}

    def add(self, task: Task, base_id: str, **fields: Any) -> TaskRef:
        task_id = self._unique_id(base_id)
        node = TaskNode(task_id=task_id, task=task, **fields)
        self.nodes[task_id] = node
        return TaskRef(node)

    def _unique_id(self, base_id: str) -> str:
        if base_id not in self.nodes:
            return base_id
        n = 1
        while f"{base_id}__{n}" in self.nodes:
            n += 1
        return f"{base_id}__{n}"


_building: ContextVar[GraphBuilder | None] = ContextVar("zonda_graph_builder", default=None)


def current_builder() -> GraphBuilder | None:
    """The builder of the DAG function running now, if any."""
    return _building.get()


@contextmanager
def building(builder: GraphBuilder) -> Iterator[GraphBuilder]:
    token = _building.set(builder)
    try:
        yield builder
    finally:
        _building.reset(token)


def topological_order(nodes: dict[str, TaskNode], dag_id: str) -> list[str]:
    """Task ids with every task after its upstream tasks; raises DagCycleError naming the cycle."""
    order: list[str] = []
    state: dict[str, int] = {}
    for task_id in nodes:
        _visit(task_id, nodes, state, order, [], dag_id)
    return order


def _visit(
    task_id: str,
    nodes: dict[str, TaskNode],
    state: dict[str, int],
    order: list[str],
    path: list[str],
    dag_id: str,
) -> None:
    if state.get(task_id) == 2:
        return
    if state.get(task_id) == 1:
        cycle = [task_id, *reversed(path[path.index(task_id) :])]
        raise DagCycleError(
            f"DAG '{dag_id}' has a cycle: {' -> '.join(cycle)}; remove one of these dependencies"
        )
    state[task_id] = 1
    path.append(task_id)
    for up in nodes[task_id].upstream:
        _visit(up, nodes, state, order, path, dag_id)
    path.pop()
    state[task_id] = 2
    order.append(task_id)
