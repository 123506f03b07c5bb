"""Which of the requests the executor holds go to the broker now: no more than each queue's workers take.

A broker queue is first in, first out. A task published behind a long backlog waits for all of
it, whatever its priority, and the scheduler's order (priority, then older runs first) is lost.
So the executor holds the requests the scheduler gave it in that order, and publishes to each
queue only what the queue's live workers can start now, plus what they get through in
`queued_seconds` (at most `queued_per_slot` per slot), so that a slot that finishes a short task
finds its next one in the broker while the refill is on its way. How
much that is comes from how long the queue's recent tasks ran: a queue of long tasks keeps
nothing waiting on the broker, and a task of higher priority queued later is next.
A refill is a publish, not a commit; it waits until half the waiting share has room, and
publishes that half at once.

Requests of short tasks published together to a queue share messages (`bundle`): each message
costs a slot a few milliseconds of Celery's work however short its task, so up to `MAX_BUNDLE`
requests that run about `bundle_seconds` together go as one, run one after another by the slot
that takes it. Short is each task's own pace (`TaskPaces`: its last runs, whatever its queue), not
its queue's: a queue of short tasks then gets long ones (training after feature extraction, say),
and those must not run one after another in a message. A task whose last runs took more than half
of `bundle_seconds`, or that has not run since the scheduler started, gets a message of its own.
Free slots get a message each first, but no more of them than the queue's workers have CPUs:
slots beyond the CPUs would run short tasks no sooner, only take turns on the same CPUs, each
paying for its own message.

The slots and CPUs of the live workers per queue come from their heartbeats
(`tracker.LostWorkerTracker.capacity`).
A queue that no live worker consumes gets all its requests at once: a worker that starts later
finds them in the broker. Pure bookkeeping: callers pass the clock.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter, OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from zonda.executors.base import TIRef
from zonda.worker.protocol import TaskRequest

RECENT_TASKS = 32
"""Tasks per queue whose run times give its pace."""

RECENT_HORIZON = 2.0
"""Seconds after its end that a task's run time still counts for its queue's pace."""

MAX_BUNDLE = 8
"""Requests in one message at most: a slot that dies fails, or leaves to be queued again, those
behind the one it runs."""

PACE_RUNS = 4
"""A task's last runs that give its pace."""

PACED_TASKS = 4096
"""Tasks whose pace is kept (the least recently run are forgotten first)."""

TaskName = tuple[str, str]
"""(dag_id, task_id): every mapped instance and every run of a task share its pace."""


class TaskPaces:
    """How long each task's last runs took, for the tasks run most recently."""

    def __init__(self) -> None:
        self._runs: OrderedDict[TaskName, deque[float]] = OrderedDict()

    def ran(self, task: TaskName, seconds: float) -> None:
        runs = self._runs.pop(task, None) or deque(maxlen=PACE_RUNS)
        runs.append(max(0.0, seconds))
        self._runs[task] = runs
        if len(self._runs) > PACED_TASKS:
            self._runs.popitem(last=False)

    def of(self, task: TaskName) -> float | None:
        """The mean time of the task's last runs; None if it has not run."""
        runs = self._runs.get(task)
        return sum(runs) / len(runs) if runs else None


def task_name(request: TaskRequest) -> TaskName:
    """The task a request is an attempt of, whose pace it shares."""
    return (request.dag_id, request.task_id)


@dataclass(frozen=True, slots=True)
class QueueCapacity:
    """What a queue's live workers have: slots to run its tasks, and the CPUs those slots share."""

    slots: int
    cpus: int


@dataclass(order=True, slots=True)
class _Held:
    key: tuple[int, str, int]
    request: TaskRequest = field(compare=False)


class Backlog:
    """Requests held per queue in the scheduler's order, and the room each queue has on the broker."""

    def __init__(self, queued_per_slot: float, queued_seconds: float, bundle_seconds: float = 0.0) -> None:
        self.queued_per_slot = queued_per_slot
        self.queued_seconds = queued_seconds
        self.bundle_seconds = bundle_seconds
        self._held: dict[str, list[_Held]] = {}
        self._published: Counter[str] = Counter()
        self._published_as: dict[TIRef, tuple[str, TaskName]] = {}
        self._recent: dict[str, deque[tuple[float, float]]] = {}
        self._paces = TaskPaces()
        self._order = itertools.count()

    def hold(self, request: TaskRequest, queue: str) -> None:
        """Keep a request until its queue has room: higher priority first, then older runs."""
        key = (-request.priority, request.run_id, next(self._order))
        heapq.heappush(self._held.setdefault(queue, []), _Held(key, request))

    def take(
        self, slots: dict[str, int], current: dict[TIRef, TaskRequest], now: float
    ) -> list[tuple[TaskRequest, str]]:
        """The requests to publish now, each with its queue, given the live slots per queue. Requests
        no longer in `current` (their attempt ended while held, e.g. killed) are dropped."""
        taken: list[tuple[TaskRequest, str]] = []
        for queue, heap in self._held.items():
            room = self._room(queue, slots.get(queue, 0), now)
            while heap and room > 0:
                request = heapq.heappop(heap).request
                if current.get(request.ti_key) is not request:
                    continue
                taken.append((request, queue))
                self.withdrawn(request.ti_key)  # the same instance queued again (queued timeout)
                self._published[queue] += 1
                self._published_as[request.ti_key] = (queue, task_name(request))
                room -= 1
        return taken

    def messages(
        self, capacity: dict[str, QueueCapacity], current: dict[TIRef, TaskRequest], now: float
    ) -> list[tuple[list[TaskRequest], str]]:
        """`take`, grouped into the messages to publish (`bundle`), each with its queue."""
        slots = {queue: c.slots for queue, c in capacity.items()}
        spread = {
            queue: min(max(0, c.slots - self._published[queue]), c.cpus)
            for queue, c in capacity.items()
            if queue in self._held
        }
        return self.bundle(self.take(slots, current, now), spread)

    def bundle(
        self, taken: list[tuple[TaskRequest, str]], spread: dict[str, int]
    ) -> list[tuple[list[TaskRequest], str]]:
        """The messages to publish `taken` in, in its order. Per queue, each request of a task that
        is not short (`pace`) goes alone; the short ones share messages: one per slot they may
        spread to (`spread`: slots no published request held before the take, at most one per CPU,
        less those the others take) or as few as run `bundle_seconds` each, whichever is more."""
        by_queue: dict[str, list[tuple[int, TaskRequest, float | None]]] = {}
        for index, (request, queue) in enumerate(taken):
            by_queue.setdefault(queue, []).append((index, request, self.pace(request)))
        messages: list[tuple[int, list[TaskRequest], str]] = []
        for queue, requests in by_queue.items():
            short = [(i, r, pace) for i, r, pace in requests if pace is not None]
            messages += [(i, [r], queue) for i, r, pace in requests if pace is None]
            if not short:
                continue
            count = max(
                min(len(short), spread.get(queue, 0) - (len(requests) - len(short))),
                math.ceil(len(short) / self._bundle_size(max(pace for _, _, pace in short))),
            )
            share, extra = divmod(len(short), count)
            start = 0
            for index in range(count):
                end = start + share + (index < extra)
                messages.append((short[start][0], [r for _, r, _ in short[start:end]], queue))
                start = end
        return [(requests, queue) for _, requests, queue in sorted(messages, key=lambda m: m[0])]

    def _bundle_size(self, slowest: float) -> int:
        """Requests per message: as many as run within `bundle_seconds` at the slowest of their
        paces, at most `MAX_BUNDLE`."""
        return (
            MAX_BUNDLE if slowest <= 0 else max(1, min(MAX_BUNDLE, math.floor(self.bundle_seconds / slowest)))
        )

    def pace(self, request: TaskRequest) -> float | None:
        """How long the request's task ran of late, if short enough to share a message: at most
        half of `bundle_seconds` (two or more run in one message's time); None if not, or unknown."""
        pace = self._paces.of(task_name(request)) if self.bundle_seconds > 0 else None
        return pace if pace is not None and 2 * pace <= self.bundle_seconds else None

    def held(self, current: dict[TIRef, TaskRequest]) -> Iterator[tuple[TaskRequest, str]]:
        """The requests held now (not published), each with its queue."""
        for queue, heap in self._held.items():
            for entry in heap:
                if current.get(entry.request.ti_key) is entry.request:
                    yield entry.request, queue

    def finished(self, ti: TIRef, now: float, ran_for: float | None) -> None:
        """A published attempt ended: its queue has room for one more. `ran_for`: how long it ran,
        which sets its queue's pace and its task's (None when its worker did not say, e.g. it was
        lost)."""
        published = self._published_as.get(ti)
        if published is not None and ran_for is not None:
            queue, task = published
            self._recent.setdefault(queue, deque(maxlen=RECENT_TASKS)).append((now, max(0.0, ran_for)))
            self._paces.ran(task, ran_for)
        self.withdrawn(ti)

    def withdrawn(self, ti: TIRef) -> None:
        """A published attempt will not run from its message (revoked): its place is free."""
        published = self._published_as.pop(ti, None)
        if published is not None:
            self._published[published[0]] -= 1

    def waiting_share(self, queue: str, slots: int, now: float) -> int:
        """Tasks to keep waiting on the broker beyond one per slot: what the slots get through in
        `queued_seconds` at the mean run time of the queue's recent tasks, at most `queued_per_slot`
        per slot; 0 while no task of the queue ended within `RECENT_HORIZON`. Run times, not
        the times outcomes arrive, because outcomes arrive in bursts (several long tasks ending
        together say nothing about a fast queue)."""
        mean = self._mean_run_time(queue, now)
        if mean is None:
            return 0
        most = math.ceil(slots * self.queued_per_slot)
        if mean <= 0:
            return most
        return min(most, math.floor(slots * self.queued_seconds / mean))

    def _mean_run_time(self, queue: str, now: float) -> float | None:
        """Mean run time of the queue's tasks that ended within `RECENT_HORIZON` (None if none did)."""
        recent = self._recent.get(queue)
        while recent and now - recent[0][0] > RECENT_HORIZON:
            recent.popleft()
        if not recent:
            return None
        return sum(ran_for for _, ran_for in recent) / len(recent)

    def _room(self, queue: str, slots: int, now: float) -> float:
        """How many to publish now: none until the queue's room reaches half its waiting share, so
        that refills go out several at a time (one broker round trip each) rather than one per
        outcome, and the broker queue in front of the next task is shorter on average."""
        if slots == 0:
            return math.inf
        waiting = self.waiting_share(queue, slots, now)
        room = slots + waiting - self._published[queue]
        return room if room >= max(1, waiting // 2) else 0
