"""Which of the requests the executor holds go to the broker now: no more than each queue's workers take.

A broker queue is first in, first out. A task published behind a long backlog waits for all of
it, whatever its priority, and the scheduler's order (priority, then older runs first) is lost.
So the executor holds the requests the scheduler gave it (their queued state is committed) in
that order, and publishes to each queue only what the queue's live workers can start now, plus
`queued_per_slot` for each of their slots, so that a slot that finishes finds its next task in
the broker at once. A refill is then a publish, not a commit; it waits until half the waiting
share has room, and publishes that half at once.

The slots of the live workers per queue come from their heartbeats (`tracker.LostWorkerTracker.slots`).
A queue that no live worker consumes gets all its requests at once: a worker that starts later
finds them in the broker. Pure bookkeeping.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter
from dataclasses import dataclass, field

from zonda.executors.base import TIRef
from zonda.worker.protocol import TaskRequest


@dataclass(order=True, slots=True)
class _Held:
    key: tuple[int, str, int]
    request: TaskRequest = field(compare=False)


class Backlog:
    """Requests held per queue in the scheduler's order, and the room each queue has on the broker."""

    def __init__(self, queued_per_slot: float) -> None:
        self.queued_per_slot = queued_per_slot
        self._held: dict[str, list[_Held]] = {}
        self._published: Counter[str] = Counter()
        self._queue_of: dict[TIRef, str] = {}
        self._order = itertools.count()

    def hold(self, request: TaskRequest, queue: str) -> None:
        """Keep a request until its queue has room: higher priority first, then older runs."""
        key = (-request.priority, request.run_id, next(self._order))
        heapq.heappush(self._held.setdefault(queue, []), _Held(key, request))

    def take(self, slots: dict[str, int], current: dict[TIRef, TaskRequest]) -> list[tuple[TaskRequest, str]]:
        """The requests to publish now, each with its queue, given the live slots per queue. Requests
        no longer in `current` (their attempt ended while held, e.g. killed) are dropped."""
        taken: list[tuple[TaskRequest, str]] = []
        for queue, heap in self._held.items():
            room = self._room(queue, slots.get(queue, 0))
            while heap and room > 0:
                request = heapq.heappop(heap).request
                if current.get(request.ti_key) is not request:
                    continue
                taken.append((request, queue))
                self.finished(request.ti_key)  # the same instance queued again (queued timeout)
                self._published[queue] += 1
                self._queue_of[request.ti_key] = queue
                room -= 1
        return taken

    def finished(self, ti: TIRef) -> None:
        """An attempt that was published ended: its queue has room for one more."""
        queue = self._queue_of.pop(ti, None)
        if queue is not None:
            self._published[queue] -= 1

    def _room(self, queue: str, slots: int) -> float:
        """How many to publish now: none until the queue's room reaches half its waiting share, so
        that refills go out several at a time (one broker round trip each) rather than one per
        outcome, and the broker queue in front of the next task is shorter on average."""
        if slots == 0:
            return math.inf
        waiting = math.ceil(slots * self.queued_per_slot)
        room = slots + waiting - self._published[queue]
        return room if room >= max(1, waiting // 2) else 0
