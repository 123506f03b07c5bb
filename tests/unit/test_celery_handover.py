"""A worker with more slots than CPUs: which slots consume, when a slot hands its place over, and
what its heartbeats then tell the schedulers (`handover.py`, `gate.py`)."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime

from zonda.executors.celery.backlog import QueueCapacity
from zonda.executors.celery.events import RunningTask, WorkerHeartbeat
from zonda.executors.celery.gate import ThreadClock, ThreadTimes
from zonda.executors.celery.handover import (
    FIRST_LOOK,
    TIME_SLICE,
    SlotView,
    gated,
    hands_over,
    next_look,
    to_wake,
)
from zonda.executors.celery.slots import SlotReporter, SlotState
from zonda.executors.celery.tracker import LostWorkerTracker

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TASK = RunningTask("r1", "t", -1, 1, "zonda.events.s1")


def test_only_a_worker_with_more_slots_than_cpus_takes_turns() -> None:
    assert gated(concurrency=16, cpus=2)
    assert not gated(concurrency=2, cpus=2) and not gated(concurrency=1, cpus=8)


def test_a_computing_task_keeps_its_place_until_its_time_slice_a_waiting_one_gives_it_at_once() -> None:
    assert not hands_over(elapsed=FIRST_LOOK / 2, blocked=FIRST_LOOK / 2), "too soon to tell"
    assert not hands_over(elapsed=0.1, blocked=0.01), "computing (or waiting for a CPU)"
    assert hands_over(elapsed=FIRST_LOOK, blocked=FIRST_LOOK * 0.9), "blocked: waiting on I/O or a sleep"
    assert hands_over(elapsed=TIME_SLICE, blocked=0.0), "computing, but long: the others get a turn"


def test_looks_at_a_running_task_come_further_apart_and_one_at_its_time_slice() -> None:
    looks, at = [], FIRST_LOOK
    while at < TIME_SLICE:
        looks.append(round(at, 3))
        at += next_look(at)
    assert looks == [0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128] and round(at, 3) == TIME_SLICE


def view(index: int, consuming: bool = False, busy: bool = False, ready: bool = True) -> SlotView:
    return SlotView(index, ready, consuming, busy)


def test_resting_idle_slots_are_woken_until_as_many_consume_as_there_are_cpus() -> None:
    assert to_wake([view(0, consuming=True), view(1), view(2)], cpus=2) == [1]
    assert to_wake([view(0, consuming=True, busy=True), view(1), view(2)], cpus=1) == [], "one consumes"
    assert to_wake([view(0, busy=True), view(1, busy=True), view(2), view(3)], cpus=2) == [2, 3], (
        "the two that rest while their task runs do not consume"
    )
    assert to_wake([view(0, busy=True), view(1, ready=False), view(2, busy=True)], cpus=2) == [], (
        "none idle and up: the place waits for a task to end or a slot to start"
    )


def test_the_supervisor_learns_a_slot_rests_from_its_pipe_and_is_woken_to_read_it() -> None:
    read, write = os.pipe()
    urgent_read, urgent_write = os.pipe()
    try:
        state = SlotState(consuming=True)
        SlotReporter(write, urgent_write).rested()
        assert os.read(urgent_read, 16), "the supervisor is woken, not left to its next read"
        state.feed(os.read(read, 65536))
        assert not state.consuming
        assert SlotState(consuming=False).consuming is False, "a slot can start resting"
    finally:
        for fd in (read, write, urgent_read, urgent_write):
            os.close(fd)


def beat(concurrency: int, resting: int, *running: RunningTask, cpus: int = 2) -> WorkerHeartbeat:
    return WorkerHeartbeat(
        "w@h", "h", ("default",), concurrency, running, NOW, NOW, cpus=cpus, resting=resting
    )


def test_heartbeats_say_how_many_slots_rest_and_older_workers_rest_none() -> None:
    sent = beat(16, 13, TASK)
    assert WorkerHeartbeat.from_json(sent.to_json()) == sent
    older = {k: v for k, v in sent.to_json().items() if k != "resting"}
    assert WorkerHeartbeat.from_json(older).resting == 0


def test_only_consuming_slots_without_a_task_are_free() -> None:
    assert beat(16, 14).free_slots() == 2
    assert beat(16, 14, TASK, TASK).free_slots() == 0, "both consuming slots run a task: a message waits"
    assert beat(4, 0, TASK).free_slots() == 3


def test_the_backlog_counts_the_slots_that_take_tasks_not_the_resting_ones() -> None:
    tracker = LostWorkerTracker(interval=1.0)
    tracker.heartbeat(beat(16, 13, TASK), set(), 0.0)
    assert tracker.capacity(0.5) == {"default": QueueCapacity(slots=3, cpus=2)}, (
        "two consume, one runs a long task after handing its place over; 13 rest"
    )


def measure(work: str) -> tuple[float, float]:
    """(elapsed, blocked) of a thread that sleeps or computes for 60 ms."""
    result: list[tuple[float, float]] = []

    def run() -> None:
        clock = ThreadClock()
        times = ThreadTimes(clock)
        end = time.monotonic() + 0.06
        if work == "sleep":
            time.sleep(0.06)
        else:
            while time.monotonic() < end:
                pass
        result.append(times.since())
        clock.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result[0]


def test_a_thread_that_sleeps_is_blocked_one_that_computes_is_not() -> None:
    elapsed, blocked = measure("sleep")
    assert elapsed >= 0.06 and blocked >= 0.05, (elapsed, blocked)
    elapsed, blocked = measure("compute")
    assert blocked < elapsed / 2, f"time waiting for a CPU is not blocked: {blocked:.3f} of {elapsed:.3f} s"
