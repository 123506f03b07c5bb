"""Timers of the scheduler: retry delays, hard deadlines and schedule fire times, in one heap."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from zonda.core.run_graph import TIKey

TimerKind = Literal["retry", "deadline", "schedule", "queued"]


@dataclass(order=True, frozen=True)
class Timer:
    due: datetime
    seq: int
    kind: TimerKind = field(compare=False)
    run_id: str = field(compare=False, default="")
    ti_key: TIKey = field(compare=False, default=("", -1))
    try_number: int = field(compare=False, default=0)


class Timers:
    """A heap of timers; stale ones are the caller's to ignore (they carry the try number)."""

    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._seq = itertools.count()

    def add(
        self, due: datetime, kind: TimerKind, run_id: str = "", ti_key: TIKey = ("", -1), try_number: int = 0
    ) -> None:
        heapq.heappush(self._heap, Timer(due, next(self._seq), kind, run_id, ti_key, try_number))

    def next_due(self) -> datetime | None:
        return self._heap[0].due if self._heap else None

    def pop_due(self, now: datetime) -> list[Timer]:
        due: list[Timer] = []
        while self._heap and self._heap[0].due <= now:
            due.append(heapq.heappop(self._heap))
        return due
