"""The JSON shape of the latency dashboard and the system page."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from zonda.api.schemas import Timestamp, WorkerRecord


class Percentiles(BaseModel):
    """How many values, and their p50/p95/p99/max (null when there are none)."""

    count: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None


class Figures(BaseModel):
    """The dashboard's figures over one span of time (the window, or one bucket of it)."""

    transition_ms: Percentiles = Field(
        description="Start of each task instance minus the latest end of its upstream tasks' instances"
    )
    queue_wait_ms: Percentiles = Field(description="Started minus queued, per attempt that started")
    run_duration_ms: Percentiles = Field(description="Ended minus created, per run that ended")
    run_execution_ms: Percentiles = Field(description="Ended minus started, per run that ended")
    runs_ended: int
    runs_failed: int
    failure_rate: float | None = Field(description="runs_failed / runs_ended; null when no run ended")
    tasks_ended: int = Field(description="Task instances that started and finished")
    tasks_per_minute: float
    runs_per_hour: float


class BucketFigures(Figures):
    """The figures of one bucket, which starts at `start` and covers `seconds` of the window."""

    start: Timestamp
    seconds: float


class TenantLatency(BaseModel):
    """One tenant's figures: over the window, and per bucket."""

    tenant_id: str
    total: Figures
    series: list[BucketFigures]


class DagLatency(BaseModel):
    """One DAG's figures over the window (its series: ask with `dag_id`)."""

    dag_id: str
    tenant_id: str
    total: Figures


class LatencyReport(BaseModel):
    """Figures of the runs in scope over [since, until): all together, per tenant and per DAG.

    Values are placed by when they happened: a transition and a queue wait by the task's start,
    a task by its end, a run by its end. `series` has one entry per bucket, empty ones included.
    """

    since: Timestamp
    until: Timestamp
    bucket: str
    bucket_seconds: int
    tenant_id: str | None
    dag_id: str | None
    total: Figures
    series: list[BucketFigures]
    tenants: list[TenantLatency]
    dags: list[DagLatency]


class SchedulerStatus(BaseModel):
    """A scheduler as its heartbeat shows it."""

    id: str
    hostname: str
    pid: int
    started_at: Timestamp
    heartbeat_at: Timestamp
    heartbeat_age_seconds: float
    alive: bool
    runs: int = Field(
        default=0,
        description="active runs whose lease it holds, of the tenants in scope (a DAG's runs are all held by one "
        "scheduler at a time)",
    )


class DatabaseStatus(BaseModel):
    """Whether the metadata DB answered, and how long a round trip took."""

    reachable: bool
    dialect: str
    round_trip_ms: float | None = None


class TenantLoad(BaseModel):
    """What one tenant has waiting or in flight now."""

    tenant_id: str
    scheduled_tasks: int = Field(description="Ready, waiting for a slot")
    queued_tasks: int = Field(description="Handed to an executor, not started")
    running_tasks: int
    queued_runs: int
    running_runs: int
    waiting_by_queue: dict[str, int] = Field(
        default_factory=dict,
        description="Celery: queued tasks not started, per broker queue, held by a live scheduler or on the "
        "broker (the broker's own queue length leaves out the held ones; scale workers on this)",
    )


class SystemStatus(BaseModel):
    """The server's parts now: "degraded" with `problems` when a scheduler is missing or the DB fails."""

    status: Literal["ok", "degraded"]
    problems: list[str]
    checked_at: Timestamp
    database: DatabaseStatus
    schedulers: list[SchedulerStatus]
    workers: list[WorkerRecord]
    tenants: list[TenantLoad]
