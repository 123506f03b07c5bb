"""The protocol between the scheduler (via an executor) and the process that runs task code.

What crosses the boundary: a `TaskRequest` carries everything a task needs (which code version,
its inputs as artifact refs, params, context, its secrets); the worker answers with `TaskStarted`
and then `TaskFinished` (outcome, timings, output ref). Nothing else: workers never hold the
metadata DB's credentials, because task code is tenant code. The local executor frames these
frozen dataclasses as pickles over a `multiprocessing` pipe; the Celery executor frames them as
JSON (`executors/celery/codec.py`) but carries the same fields. Each message has a `version` so
the format can evolve; fields added with a default (`queue`, `reply_to`, `worker`, `api_url`,
`api_token`) keep version 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from zonda.core.outputs import ArtifactRef

PROTOCOL_VERSION = 1
SCHEDULER_ONLY = "scheduler_only"
"""Field metadata: the field stays on the scheduler's side of a broker (remote executors skip it)."""

InputValue = ArtifactRef | list[ArtifactRef] | None


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """Run one attempt of one task instance."""

    run_id: str
    dag_id: str
    task_id: str
    map_index: int
    try_number: int
    dag_version: int
    code_uri: str
    code_hash: str
    fileloc: str
    log_path: str
    output_path: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, InputValue] = field(default_factory=dict)
    key: str | None = None
    logical_date: datetime | None = None
    timeout: float | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    queue: str = "default"
    """The task's `queue` option: which workers may run it (remote executors route by it)."""
    pool: str | None = None
    priority: int = 0
    """The task's `priority` option: a remote executor that holds requests sends higher ones first."""
    reply_to: str = ""
    """Where the worker reports (a remote executor's reply address); "" for the local pipes."""
    api_url: str = ""
    """The API the task may call with `api_token` ("" when no server runs, as in `zonda run`)."""
    api_token: str = field(default="", repr=False)
    """The run's token: reads its own tenant's objects (viewer) while the run is active."""
    queued_at: datetime | None = field(default=None, metadata={SCHEDULER_ONLY: True})
    """When the scheduler stored the attempt as queued: names a request published again (Celery).
    Scheduler-side only: not sent to remote workers, so workers of the previous release read the
    request as before."""
    version: int = PROTOCOL_VERSION

    @property
    def ti_key(self) -> tuple[str, str, int]:
        return (self.run_id, self.task_id, self.map_index)

    @property
    def tenant(self) -> str | None:
        """The tenant whose DAG this is (DAG ids are `tenant/name`); None for a DAG id without one."""
        tenant, qualified, _ = self.dag_id.partition("/")
        return tenant if qualified else None


@dataclass(frozen=True, slots=True)
class TaskStarted:
    """The attempt began executing user code."""

    run_id: str
    task_id: str
    map_index: int
    try_number: int
    started_at: datetime
    pid: int
    worker: str = ""
    """The worker that runs the attempt (a remote worker's id; "" for local workers)."""
    version: int = PROTOCOL_VERSION

    @property
    def ti_key(self) -> tuple[str, str, int]:
        return (self.run_id, self.task_id, self.map_index)


@dataclass(frozen=True, slots=True)
class TaskFinished:
    """The attempt ended; `ok` tells success, `error` says why it failed (the traceback is in the log)."""

    run_id: str
    task_id: str
    map_index: int
    try_number: int
    ok: bool
    started_at: datetime
    ended_at: datetime
    output: ArtifactRef | None = None
    length: int | None = None
    error: str | None = None
    worker: str = ""
    """The worker that ran the attempt (a remote worker's id; "" for local workers)."""
    version: int = PROTOCOL_VERSION

    @property
    def ti_key(self) -> tuple[str, str, int]:
        return (self.run_id, self.task_id, self.map_index)

    @classmethod
    def lost(
        cls, run_id: str, task_id: str, map_index: int, try_number: int, error: str, worker: str = ""
    ) -> TaskFinished:
        """A failed outcome, now, for an attempt that did not run to its end: its worker vanished or
        refused it (the task's retries then apply)."""
        now = datetime.now(UTC)
        return cls(
            run_id,
            task_id,
            map_index,
            try_number,
            ok=False,
            started_at=now,
            ended_at=now,
            error=error,
            worker=worker,
        )


WorkerMessage = TaskStarted | TaskFinished
