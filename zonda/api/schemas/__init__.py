"""The JSON shapes of the API (and of the CLI's `--json`). No ORM objects cross this line."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, PlainSerializer


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds, e.g. 2026-11-22T18:17:00.000123Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Timestamp = Annotated[datetime, PlainSerializer(iso_utc, return_type=str)]

INT32_MAX = 2**31 - 1
"""Counts and indexes are stored as 32-bit integers on PostgreSQL: larger values are refused (422)."""

Count = Annotated[int, Field(ge=0, le=INT32_MAX)]


class TaskRecord(BaseModel):
    """One task instance of a run."""

    task_id: str
    map_index: int = -1
    state: str
    try_number: int = 0
    max_tries: int = 1
    upstream: list[str] = Field(default_factory=list)
    queued_at: Timestamp | None = None
    started_at: Timestamp | None = None
    ended_at: Timestamp | None = None
    error: str | None = None


class RunRecord(BaseModel):
    """A run and its task instances."""

    run_id: str
    tenant_id: str
    dag_id: str
    dag_version: int
    state: str
    key: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    trigger: str
    logical_date: Timestamp | None = None
    created_at: Timestamp
    started_at: Timestamp | None = None
    ended_at: Timestamp | None = None
    tasks: list[TaskRecord] = Field(default_factory=list)
    pending_commands: list[str] = Field(
        default_factory=list, description="Commands (clear, cancel, mark) the scheduler has not applied yet"
    )


class RunSummary(BaseModel):
    """A run without its tasks (list views)."""

    run_id: str
    tenant_id: str
    dag_id: str
    dag_version: int
    state: str
    key: str | None = None
    trigger: str
    logical_date: Timestamp | None = None
    created_at: Timestamp
    started_at: Timestamp | None = None
    ended_at: Timestamp | None = None


class RunPage(BaseModel):
    """One page of runs, newest first; pass `next_cursor` as `cursor` for the next page."""

    runs: list[RunSummary]
    next_cursor: str | None = None


class TriggerRequest(BaseModel):
    """Start a run now."""

    params: dict[str, Any] = Field(default_factory=dict)
    key: str | None = Field(None, max_length=250, description="Business key, e.g. a customer id")


class ClearRequest(BaseModel):
    """Re-run parts of a run: by default every failed task; or `task_id` (and its downstream tasks)."""

    task_id: str | None = None
    downstream: bool = False


class MarkState(StrEnum):
    """What a user may mark a task as."""

    SUCCESS = "success"
    FAILED = "failed"


class MarkRequest(BaseModel):
    """End a task by hand as if it succeeded or failed: every instance, or one of a mapped task."""

    state: MarkState
    map_index: Annotated[int | None, Field(ge=-1, le=INT32_MAX)] = None


class BackfillRequest(BaseModel):
    """Create one run per scheduled time in [start, end] that has no run yet."""

    start: datetime
    end: datetime


class BackfillResult(BaseModel):
    run_ids: list[str]
    skipped_existing: int = 0


class DagRecord(BaseModel):
    """A DAG as the scheduler knows it (from its latest version)."""

    dag_id: str
    tenant_id: str
    fileloc: str
    version: int
    paused: bool
    active: bool
    owner: str
    description: str
    tags: list[str]
    schedule: str | None
    timezone: str
    next_run_at: Timestamp | None = None
    params_schema: dict[str, Any] = Field(default_factory=dict)
    tasks: list[str] = Field(default_factory=list)


class DagVersionRecord(BaseModel):
    """One version of a DAG; `source` (the file it was parsed from) only when one version is asked for."""

    dag_id: str
    version: int
    hash: str
    fileloc: str
    created_at: Timestamp
    tasks: list[str] = Field(default_factory=list)
    source: str | None = None


class DagPatch(BaseModel):
    paused: bool


class ImportErrorRecord(BaseModel):
    tenant_id: str
    fileloc: str
    error: str
    recorded_at: Timestamp


class CommandAccepted(BaseModel):
    """The request was recorded; the scheduler applies it within milliseconds."""

    command_id: int
    run_id: str


class PoolSpec(BaseModel):
    """A pool's size."""

    slots: int = Field(ge=0, description="Tasks using this pool run at most this many slots at once")
    description: str = ""


class PoolRecord(PoolSpec):
    """A tenant's pool: tasks of that tenant's DAGs name it with `@task(pool=...)`."""

    tenant_id: str
    name: str


class Health(BaseModel):
    """Liveness of the parts of the server."""

    status: str
    db: bool
    scheduler_heartbeat_age_seconds: float | None = None
    schedulers: int = 0


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class RunningAttempt(BaseModel):
    """A task attempt a worker was running at its last heartbeat."""

    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int


class WorkerRecord(BaseModel):
    """A Celery worker as the schedulers last saw it in its heartbeat."""

    worker_id: str
    hostname: str
    queues: list[str]
    concurrency: int
    cpus: int | None = Field(
        None,
        description="CPUs its slots share, as the worker found them (CPU affinity, lowered to its cgroup "
        "quota); null from a worker that does not say",
    )
    resting: int = Field(
        0,
        description="Slots that take no task now: a worker with more slots than CPUs consumes its queues with as "
        "many as it has CPUs, and a slot whose task waits or runs long hands its place to a resting one",
    )
    running: list[RunningAttempt] = Field(default_factory=list)
    started_at: Timestamp
    heartbeat_at: Timestamp
    heartbeat_age_seconds: float
    alive: bool = Field(description="A heartbeat arrived within the last 3 heartbeat intervals")
