"""The serialized DAG: what the server knows of a DAG without importing its code.

The DAG processor turns a user's `@dag` into a `DagSpec` and stores it as JSON in each DAG version.
The scheduler, the API and the UI work from specs only; just the workers import user code.
Specs are frozen and carry `SPEC_VERSION` so that the format can evolve without guessing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Literal

from zonda.core.states import TriggerRule

SPEC_VERSION = 1

MapSourceKind = Literal["task", "param", "literal"]


@dataclass(frozen=True)
class MapSource:
    """One mapped argument: where its list comes from and, for a literal, its known length."""

    arg: str
    kind: MapSourceKind
    ref: str = ""
    length: int = 0


@dataclass(frozen=True)
class ScheduleSpec:
    """When a DAG runs by itself: a cron expression (presets expanded) or a fixed interval."""

    kind: Literal["cron", "interval"]
    expr: str = ""
    seconds: float = 0.0

    def describe(self) -> str:
        return self.expr if self.kind == "cron" else f"every {_human_seconds(self.seconds)}"


@dataclass(frozen=True)
class TaskSpec:
    """One task of a DAG, with every option the scheduler enforces."""

    task_id: str
    kind: Literal["python", "bash"] = "python"
    upstream: tuple[str, ...] = ()
    data_upstream: tuple[str, ...] = ()
    retries: int = 0
    retry_delay: float = 0.0
    retry_exponential_backoff: bool = False
    max_retry_delay: float | None = None
    timeout: float | None = None
    priority: int = 0
    pool: str | None = None
    pool_slots: int = 1
    queue: str = "default"
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    map_sources: tuple[MapSource, ...] = ()
    doc: str = ""
    cpu: float = 1.0
    gpu: float = 0.0
    memory_mb: int | None = None

    @property
    def is_mapped(self) -> bool:
        return bool(self.map_sources)


@dataclass(frozen=True)
class DagSpec:
    """A whole DAG: identity, schedule and limits, params schema and tasks in topological order."""

    dag_id: str
    tasks: tuple[TaskSpec, ...]
    fileloc: str = ""
    description: str = ""
    schedule: ScheduleSpec | None = None
    timezone: str = "UTC"
    start_date: str | None = None
    catchup: bool = False
    max_active_runs: int = 16
    max_active_tasks: int = 64
    tags: tuple[str, ...] = ()
    owner: str = ""
    params_schema: dict[str, Any] = field(default_factory=dict)
    spec_version: int = SPEC_VERSION

    @cached_property
    def task_map(self) -> dict[str, TaskSpec]:
        return {t.task_id: t for t in self.tasks}

    @cached_property
    def topo_index(self) -> dict[str, int]:
        """Position of each task in topological order (ties in dispatch order follow the DAG)."""
        return {t.task_id: i for i, t in enumerate(self.tasks)}

    def task(self, task_id: str) -> TaskSpec:
        return self.task_map[task_id]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> DagSpec:
        return dag_spec_from_dict(json.loads(text))


def dag_spec_from_dict(data: dict[str, Any]) -> DagSpec:
    """Rebuild a `DagSpec` from its JSON form (the inverse of `DagSpec.to_json`)."""
    data = dict(data)
    tasks = tuple(_task_from_dict(t) for t in data.pop("tasks"))
    schedule = data.pop("schedule")
    return DagSpec(
        tasks=tasks,
        schedule=ScheduleSpec(**schedule) if schedule else None,
        tags=tuple(data.pop("tags")),
        **data,
    )


def _task_from_dict(data: dict[str, Any]) -> TaskSpec:
    data = dict(data)
    return TaskSpec(
        upstream=tuple(data.pop("upstream")),
        data_upstream=tuple(data.pop("data_upstream")),
        trigger_rule=TriggerRule(data.pop("trigger_rule")),
        map_sources=tuple(MapSource(**m) for m in data.pop("map_sources")),
        **data,
    )


def _human_seconds(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
