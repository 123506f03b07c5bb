"""Which published requests should have reached a worker by now, and since when.

A request waits on the broker as long as its queue's workers are busy, or while none runs. That
is no sign of a lost message, and publishing it again then would run the task twice once the
first message arrives. So a published request that has not started counts as *due* only on
evidence that the broker no longer holds it:
- a request published after it to the same queue started (a broker queue is first in, first out);
- a worker that consumes its queue had a free slot in each of its heartbeats for `settle` seconds,
  from a heartbeat after the request was published (a free slot takes the next message at once).
The scheduler queues a request again once it has been due, and not started, for
`ZONDA_QUEUED_TIMEOUT` (`CeleryExecutor.undelivered_for`). After a takeover, requests the dead
scheduler published but never stored may be on the broker: each queue then gets a barrier, due
on the same evidence, behind which the taken-over runs' first new attempts wait (`barrier`). Pure
bookkeeping: time (monotonic seconds) is passed in.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from zonda.executors.base import TIRef


@dataclass(slots=True)
class _Published:
    queue: str
    try_number: int
    seq: int
    at: float
    due: float | None = None


class Deliveries:
    """Published, not yet started requests per queue, in publish order, and the evidence on each."""

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self._published: dict[TIRef, _Published] = {}
        self._by_queue: dict[str, dict[TIRef, _Published]] = {}
        self._seq = itertools.count()
        self._free_since: dict[str, float] = {}
        self._barrier_at: float | None = None
        self._barriers: dict[str, _Published] = {}

    def published(self, ti: TIRef, try_number: int, queue: str, now: float) -> None:
        """A request went to the broker (again: an earlier publication of it is forgotten)."""
        self.forget(ti)
        entry = _Published(queue, try_number, next(self._seq), now)
        self._published[ti] = entry
        self._by_queue.setdefault(queue, {})[ti] = entry

    def started(self, ti: TIRef, try_number: int, now: float) -> None:
        """An attempt started: every request published before it to its queue should have, too."""
        entry = self._published.get(ti)
        if entry is None or entry.try_number != try_number:
            return
        self.forget(ti)
        for other in self._by_queue.get(entry.queue, {}).values():
            if other.seq > entry.seq:
                break
            if other.due is None:
                other.due = now
        barrier = self._barriers.get(entry.queue)
        if barrier is not None and barrier.due is None and barrier.seq < entry.seq:
            barrier.due = now

    def heartbeat(self, worker: str, queues: Collection[str], free: bool, now: float) -> None:
        """A worker consuming `queues` heartbeats, with a free slot or not."""
        if not free:
            self._free_since.pop(worker, None)
            return
        since = self._free_since.setdefault(worker, now)
        for queue in queues:
            barrier = self._barriers.get(queue)
            if barrier is not None and barrier.due is None and now - max(since, barrier.at) >= self.settle:
                barrier.due = now
            for entry in self._by_queue.get(queue, {}).values():
                if now - max(since, entry.at) < self.settle:
                    break  # the worker was not free for that long since it was published, nor for later ones
                if entry.due is None:
                    entry.due = now

    def barrier(self, now: float) -> None:
        """Requests published elsewhere before `now` may be on the broker, unseen here (another
        scheduler's runs were just taken over): every queue gets a barrier published at `now`."""
        self._barrier_at = now
        self._barriers.clear()

    def barrier_due_for(self, queue: str, now: float) -> float:
        """Seconds the barrier of `queue` has been due: every request published to it before the
        last `barrier` should have reached a worker that long ago (0 while not; infinite without
        one). A queue's barrier is made when first asked for, behind every request published
        to it so far, so only later ones overtake it."""
        if self._barrier_at is None:
            return math.inf
        barrier = self._barriers.get(queue)
        if barrier is None:
            self._barriers[queue] = _Published(queue, 0, next(self._seq), self._barrier_at)
            return 0.0
        return 0.0 if barrier.due is None else now - barrier.due

    def waiting(self) -> Iterator[tuple[TIRef, str]]:
        """The published requests that have not started, each with its queue."""
        for queue, entries in self._by_queue.items():
            for ti in entries:
                yield ti, queue

    def forget(self, ti: TIRef) -> None:
        """The request ended, was killed or is withdrawn."""
        entry = self._published.pop(ti, None)
        if entry is not None:
            queue = self._by_queue[entry.queue]
            del queue[ti]
            if not queue:
                del self._by_queue[entry.queue]

    def undelivered_for(self, ti: TIRef, now: float) -> float | None:
        """Seconds the request has been due without starting (0 while nothing says it should
        have); None if it is not published (held, or never seen here)."""
        entry = self._published.get(ti)
        if entry is None:
            return None
        return 0.0 if entry.due is None else now - entry.due
