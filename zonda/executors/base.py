"""The executor interface the scheduler drives (local process pool today; Celery and others fit it too)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from zonda.worker.protocol import TaskFinished, TaskRequest, WorkerMessage

TIRef = tuple[str, str, int]
"""(run_id, task_id, map_index): one task instance across runs."""


class QueuedAttempt(NamedTuple):
    """A queued attempt whose request is taken as lost, to be withdrawn before it is queued again."""

    ti: TIRef
    try_number: int
    queued_at: datetime | None


class Executor(Protocol):
    """Runs requests and reports `TaskStarted`/`TaskFinished` messages.

    A task whose worker vanished is reported as a failed `TaskFinished` (WorkerLostError), so the
    scheduler applies the task's retry policy to it like to any failure.
    """

    commit_before_dispatch: bool
    """True if the scheduler may submit a task before its queued state is stored only while the
    run's lease is fresh (ADR 0005): executors without an outcome journal, whose requests outlive
    the scheduler. One that takes over its runs then holds their next attempts back until those
    are accounted for (`takeover_barrier`)."""

    in_flight_survives_scheduler: bool
    """True if tasks keep running when the scheduler that sent them dies (remote workers): the
    scheduler that takes over waits for their outcome instead of re-queueing them."""

    def start(self) -> None:
        """Start workers; returns when they can take requests."""

    def free_slots(self) -> int:
        """How many more requests can start now."""

    def reaches_workers(self) -> bool:
        """False while the executor cannot reach its workers (a remote one cut off from its broker):
        the scheduler then lets its runs' leases run out and takes no run, so that a scheduler
        that reaches them finishes those runs."""

    def submit(self, requests: Sequence[TaskRequest]) -> None:
        """Start requests (no more than `free_slots()`); a batch lets a remote executor send them at once."""

    def waitables(self) -> Sequence[Any]:
        """Objects to pass to `multiprocessing.connection.wait`; ready means `poll()` has news."""

    @property
    def epoch(self) -> int:
        """Number of `poll()` calls so far: names "everything polled until now" for `checkpoint`."""

    def poll(self) -> list[WorkerMessage]:
        """Messages that arrived since the last call (never blocks)."""

    def adopt(self, requests: Sequence[TaskRequest]) -> None:
        """Queued attempts of a dead scheduler, taken over: their requests may be on their way to
        a worker. Asked only when `in_flight_survives_scheduler`."""

    def undelivered_for(self, ti: TIRef) -> float:
        """Seconds a queued attempt should have reached a worker and did not start (0 while it
        waits for one). Asked only when `in_flight_survives_scheduler`: past `queued_timeout`,
        the scheduler takes the request as lost and queues the attempt again."""

    def takeover_barrier(self) -> None:
        """Another scheduler's runs were just taken over: requests it submitted without storing
        them may reach workers. Asked only when `commit_before_dispatch`."""

    def barrier_due_for(self, request: TaskRequest) -> float:
        """Seconds every request submitted before the last `takeover_barrier` that would share this
        request's way to a worker should have reached one (0 while not). Past `queued_timeout`, an
        attempt held back since the takeover that did not report never started: it is withdrawn and
        queued."""

    def withdraw(self, attempts: Sequence[QueuedAttempt]) -> bool:
        """Make sure these queued attempts' requests never run, before they are queued again;
        False if that cannot be done now (try them all again later). One call for all that are
        due together: a remote executor tells its workers of them in one message."""

    def kill(self, ti: TIRef, reason: str) -> None:
        """Stop a running task now (e.g. past its hard deadline); it is reported failed with `reason`."""

    def follow(self, scheduler_id: str) -> list[TaskFinished]:
        """Take over what belongs to dead scheduler `scheduler_id`: receive its messages from now on,
        and return the outcomes its workers recorded that it may not have stored."""

    def checkpoint(self, epoch: int) -> None:
        """Everything returned by `follow()` and by `poll()` up to `epoch` is stored: drop records of it."""

    def stop(self) -> None:
        """Stop the workers (running tasks are abandoned; they will be recovered or re-run)."""
