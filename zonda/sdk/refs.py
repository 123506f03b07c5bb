"""Placeholders used while a DAG function builds its graph: task outputs and DAG params."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.sdk.graph import TaskNode


class TaskRef:
    """The future return value of a task in the DAG being built; `a >> b` orders two tasks."""

    __slots__ = ("node",)

    def __init__(self, node: TaskNode) -> None:
        self.node = node

    @property
    def task_id(self) -> str:
        return self.node.task_id

    def __rshift__(self, other: TaskRef | Iterable[TaskRef]) -> TaskRef | Iterable[TaskRef]:
        for ref in _as_refs(other):
            ref.node.order_upstream.add(self.node.task_id)
        return other

    def __lshift__(self, other: TaskRef | Iterable[TaskRef]) -> TaskRef | Iterable[TaskRef]:
        for ref in _as_refs(other):
            self.node.order_upstream.add(ref.node.task_id)
        return other

    def __rrshift__(self, other: Iterable[TaskRef]) -> TaskRef:
        self << other
        return self

    def __rlshift__(self, other: Iterable[TaskRef]) -> TaskRef:
        self >> other
        return self

    def __repr__(self) -> str:
        return f"TaskRef({self.node.task_id!r})"


@dataclass(frozen=True)
class ParamRef:
    """A DAG param, resolved to the run's value when the task runs."""

    name: str


def _as_refs(value: TaskRef | Iterable[TaskRef]) -> list[TaskRef]:
    if isinstance(value, TaskRef):
        return [value]
    return [v for v in value if isinstance(v, TaskRef)]


def walk_refs(value: Any) -> Iterable[TaskRef | ParamRef]:
    """Yield every placeholder inside an argument (through lists, tuples, sets and dict values)."""
    if isinstance(value, TaskRef | ParamRef):
        yield value
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from walk_refs(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk_refs(item)
