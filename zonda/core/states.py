"""Task and run states, and the transitions allowed between them (the state machine is data)."""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    """State of one task instance (one task, one map index, in one run)."""

    PENDING = "pending"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    UP_FOR_RETRY = "up_for_retry"
    SUCCESS = "success"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        return self in TASK_FINISHED

    @property
    def in_flight(self) -> bool:
        """Handed to an executor and not yet reported back."""
        return self in (TaskState.QUEUED, TaskState.RUNNING)


TASK_FINISHED = frozenset({TaskState.SUCCESS, TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.SKIPPED})

_BY_HAND = frozenset({TaskState.SUCCESS, TaskState.FAILED})

TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.PENDING: frozenset(
        {TaskState.SCHEDULED, TaskState.SKIPPED, TaskState.UPSTREAM_FAILED, TaskState.FAILED} | _BY_HAND
    ),
    TaskState.SCHEDULED: frozenset(
        {TaskState.QUEUED, TaskState.FAILED, TaskState.PENDING, TaskState.SKIPPED} | _BY_HAND
    ),
    TaskState.QUEUED: frozenset(
        {TaskState.RUNNING, TaskState.SUCCESS, TaskState.FAILED, TaskState.UP_FOR_RETRY, TaskState.SCHEDULED}
    ),
    TaskState.RUNNING: frozenset(
        {TaskState.SUCCESS, TaskState.FAILED, TaskState.UP_FOR_RETRY, TaskState.SCHEDULED}
    ),
    TaskState.UP_FOR_RETRY: frozenset({TaskState.SCHEDULED, TaskState.QUEUED, TaskState.PENDING} | _BY_HAND),
    TaskState.SUCCESS: frozenset({TaskState.PENDING, TaskState.FAILED}),
    TaskState.FAILED: frozenset({TaskState.PENDING, TaskState.SUCCESS}),
    TaskState.UPSTREAM_FAILED: frozenset({TaskState.PENDING} | _BY_HAND),
    TaskState.SKIPPED: frozenset({TaskState.PENDING} | _BY_HAND),
}
"""Allowed moves. Finished states go back to PENDING only when a user clears them; a cancelled run
fails what started (and waits to retry) and skips what did not start; a user may mark any instance
SUCCESS or FAILED by hand (`RunGraph.mark`). A retry goes straight to QUEUED when a scheduler that
took its run over learns that its request was sent before its queued state was stored."""


class RunState(StrEnum):
    """State of a DAG run."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (RunState.SUCCESS, RunState.FAILED)


class TriggerRule(StrEnum):
    """When a task may start, given how its upstream tasks ended (Airflow's vocabulary)."""

    ALL_SUCCESS = "all_success"
    ALL_DONE = "all_done"
    ALL_FAILED = "all_failed"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    NONE_FAILED = "none_failed"
    NONE_SKIPPED = "none_skipped"
    ALWAYS = "always"


class RunTrigger(StrEnum):
    """What created a run."""

    MANUAL = "manual"
    API = "api"
    SCHEDULE = "schedule"
    BACKFILL = "backfill"
    LOCAL = "local"
