"""`zonda.context()`: what a running task knows about itself (run, DAG, task, try, params, key),
and how it reaches the API on behalf of its run (`api_url`, `api_token`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from zonda.errors import ZondaError


@dataclass(frozen=True)
class TaskContext:
    """Facts about the task attempt that is running now."""

    run_id: str
    dag_id: str
    task_id: str
    try_number: int = 1
    map_index: int = -1
    params: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None
    logical_date: datetime | None = None
    dag_version: int = 0
    api_url: str = ""
    """The server's API ("" when no server runs the task, as in `zonda run`)."""
    api_token: str = field(default="", repr=False)
    """Bearer token of this run: reads its own tenant's runs, artifacts and logs while the run is active."""


_current: ContextVar[TaskContext | None] = ContextVar("zonda_task_context", default=None)


class NoTaskContextError(ZondaError):
    """`zonda.context()` was called outside a running task."""


def context() -> TaskContext:
    """Return the context of the task attempt running in this thread."""
    current = _current.get()
    if current is None:
        raise NoTaskContextError(
            "zonda.context() is only available while Zonda runs a task; in a unit test wrap the call "
            "in `with zonda.testing.task_context(...)`"
        )
    return current


@contextmanager
def bound_context(ctx: TaskContext) -> Iterator[TaskContext]:
    """Make `ctx` what `context()` returns inside the block."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
