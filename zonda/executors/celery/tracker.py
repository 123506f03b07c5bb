"""Which attempts of this scheduler run on which worker, and which of them lost their worker.

Evidence that an attempt runs is its `TaskStarted` or a worker heartbeat that lists it; each
refreshes the attempt's `seen` time. An attempt with no evidence for `misses` heartbeat intervals
is lost: its worker stopped heartbeating (it died, or its machine did), or the worker is alive but
no longer lists it and sent no outcome (its slot process died, or the outcome could not be
published). Either way it is reported as a failed `TaskFinished` (WorkerLostError), and the
task's retry policy applies. Pure bookkeeping: time (monotonic seconds) is passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass

from zonda.executors.base import TIRef
from zonda.executors.celery.backlog import QueueCapacity
from zonda.executors.celery.events import RunningTask, WorkerHeartbeat, lost_report
from zonda.worker.protocol import TaskFinished, TaskStarted

MISSES = 3
"""Heartbeat intervals without news before an attempt counts as lost."""

_REMEMBER_REPORTED = 10_000


@dataclass
class _Attempt:
    task: RunningTask
    worker: str
    seen: float


class LostWorkerTracker:
    """Attempts by task instance, workers by last heartbeat; `lost(now)` reports the vanished ones."""

    def __init__(self, interval: float, misses: int = MISSES) -> None:
        self.limit = interval * misses
        self._attempts: dict[TIRef, _Attempt] = {}
        self._workers: dict[str, float] = {}
        self._consumers: dict[str, WorkerHeartbeat] = {}
        self._reported: OrderedDict[tuple[TIRef, int], None] = OrderedDict()

    def started(self, message: TaskStarted, reply_to: str, now: float) -> None:
        task = RunningTask(message.run_id, message.task_id, message.map_index, message.try_number, reply_to)
        self._see(task, message.worker, now)

    def finished(self, message: TaskFinished) -> None:
        self.forget(message.ti_key, message.try_number)
        self._remember(message.ti_key, message.try_number)

    def reported(self, ti: TIRef, try_number: int) -> bool:
        """Whether an outcome of this attempt was already reported (a second one is a duplicate)."""
        return (ti, try_number) in self._reported

    def heartbeat(self, beat: WorkerHeartbeat, queues: Collection[str], now: float) -> None:
        """A worker is alive; refresh the attempts it runs for the reply queues in `queues`."""
        self._workers[beat.worker_id] = now
        self._consumers[beat.worker_id] = beat
        for task in beat.running:
            if task.reply_to in queues:
                self._see(task, beat.worker_id, now)

    def forget(self, ti: TIRef, try_number: int | None = None) -> RunningTask | None:
        """Stop tracking an attempt (it ended, or was killed); returns it if it was tracked."""
        attempt = self._attempts.get(ti)
        if attempt is None or (try_number is not None and attempt.task.try_number != try_number):
            return None
        del self._attempts[ti]
        self._remember(ti, attempt.task.try_number)
        return attempt.task

    def grace(self, now: float) -> None:
        """Count every worker and attempt as seen `now`: this scheduler could not hear them until now
        (it was cut off from the broker), so they get a full `limit` to show up again."""
        for attempt in self._attempts.values():
            attempt.seen = now
        for worker in self._workers:
            self._workers[worker] = now

    def lost(self, now: float) -> list[TaskFinished]:
        """Failed outcomes for the attempts without news for `limit` seconds (each reported once)."""
        reports: list[TaskFinished] = []
        for ti, attempt in list(self._attempts.items()):
            if now - attempt.seen > self.limit:
                reports.append(lost_report(attempt.task, self._reason(attempt, now), attempt.worker))
                self.forget(ti)
        for worker, last in list(self._workers.items()):
            if now - last > 100 * self.limit:
                del self._workers[worker]
                self._consumers.pop(worker, None)
        return reports

    def capacity(self, now: float) -> dict[str, QueueCapacity]:
        """Slots that take tasks (`WorkerHeartbeat.taking_slots`: resting ones do not) of the workers
        heard within `limit` per queue they consume (a worker on two queues counts for both), and
        the CPUs those slots share: per machine (hostname), no more than its workers' slots on the
        queue nor the most CPUs one of its workers reported (a worker that reports none counts a
        CPU per slot)."""
        slots: dict[str, int] = {}
        host_slots: dict[tuple[str, str], int] = {}
        host_cpus: dict[str, int] = {}
        for worker, beat in self._consumers.items():
            if now - self._workers[worker] > self.limit:
                continue
            host_cpus[beat.hostname] = max(host_cpus.get(beat.hostname, 0), beat.cpus or beat.concurrency)
            taking = beat.taking_slots()
            for queue in beat.queues:
                slots[queue] = slots.get(queue, 0) + taking
                key = (queue, beat.hostname)
                host_slots[key] = host_slots.get(key, 0) + taking
        cpus: dict[str, int] = {}
        for (queue, host), count in host_slots.items():
            cpus[queue] = cpus.get(queue, 0) + min(count, host_cpus[host])
        return {queue: QueueCapacity(count, cpus[queue]) for queue, count in slots.items()}

    def _see(self, task: RunningTask, worker: str, now: float) -> None:
        if (task.ti_key, task.try_number) in self._reported:
            return
        current = self._attempts.get(task.ti_key)
        if current is None or current.task.try_number <= task.try_number:
            self._attempts[task.ti_key] = _Attempt(task, worker, now)

    def _reason(self, attempt: _Attempt, now: float) -> str:
        last = self._workers.get(attempt.worker)
        if last is None or now - last > self.limit:
            return f"WorkerLostError: worker {attempt.worker} stopped heartbeating while running the task"
        return (
            f"WorkerLostError: worker {attempt.worker} no longer runs the task and sent no outcome "
            "(its process died, or the outcome could not be published)"
        )

    def _remember(self, ti: TIRef, try_number: int) -> None:
        self._reported[(ti, try_number)] = None
        while len(self._reported) > _REMEMBER_REPORTED:
            self._reported.popitem(last=False)
