"""When a slot of a `zonda worker` gives its place on the queues to another, and which slot takes it.

A worker with more slots than CPUs consumes its queues with only as many slots as it has CPUs:
short tasks then run one per CPU, in the order the broker holds them, instead of all at once
sharing the CPUs (which delays each of them, and loses the scheduler's oldest-run-first order). A
slot whose task waits (it was blocked, neither on a CPU nor waiting for one, half of the time
since it began) or has run `TIME_SLICE` hands its place over: it stops consuming while its task
still holds its only message (so no message can be on its way to it), and a resting slot starts.
Waiting and long tasks thus still fill every slot.
ADR 0013. Pure decisions: the caller measures the time and the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FIRST_LOOK = 0.002
"""Seconds after its message arrived that a slot first looks at its task. Each later look comes as
long after the one before as the task has run (2, 4, 8, 16 ms, ...), and the last at `TIME_SLICE`."""

TIME_SLICE = 0.2
"""A task that has run this long hands its slot's place over, however busy its CPU."""

WAITING_SHARE = 0.5
"""A task blocked this share of the time since it began is waiting (on I/O, a lock, a sleep), not
computing. Time spent waiting for a CPU is not blocked: a busy machine does not make short tasks
look like waiting ones."""


def hands_over(elapsed: float, blocked: float) -> bool:
    """Whether a task that began `elapsed` seconds ago, `blocked` of them, gives its slot's place over."""
    return elapsed >= TIME_SLICE or (elapsed >= FIRST_LOOK and blocked >= elapsed * WAITING_SHARE)


def next_look(elapsed: float) -> float:
    """Seconds until the next look at a task that began `elapsed` seconds ago and keeps its place."""
    return max(FIRST_LOOK, min(elapsed, TIME_SLICE - elapsed))


@dataclass(frozen=True, slots=True)
class SlotView:
    """What the supervisor knows of a slot: whether it is up, consumes, and runs a task."""

    index: int
    ready: bool
    consuming: bool
    busy: bool


def gated(concurrency: int, cpus: int) -> bool:
    """Whether a worker's slots take turns on its queues: only when it has more slots than CPUs."""
    return concurrency > cpus


def to_wake(slots: Sequence[SlotView], cpus: int) -> list[int]:
    """The resting idle slots to start consuming so that `cpus` slots consume (fewest first by index)."""
    missing = cpus - sum(1 for s in slots if s.consuming)
    if missing <= 0:
        return []
    idle = [s.index for s in slots if s.ready and not s.consuming and not s.busy]
    return sorted(idle)[:missing]
