"""A slot's consumption of its queues: on, off while it rests, handed over when its task waits or runs long.

The decisions are `handover.py`'s; this is the slot's side of them, in its Celery consumer:
- a slot that starts resting does not consume its queues until its supervisor says `consume`
  (a line on the command pipe, read by the consumer's event loop);
- while a consuming slot runs a task, the event loop looks at it at growing intervals and,
  once it `hands_over`, stops consuming and tells the supervisor (`rest`), which starts a resting
  slot. The task's message is not acknowledged yet, and a slot holds one message at a time
  (prefetch 1), so no message can be on its way to the slot: stopping never sends one back to the
  broker (which would mark it redelivered). The task thread's end waits for a stop under way.
Stopping and starting change the queues the consumer selects, so a reconnection keeps them.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from celery import bootsteps

from zonda.executors.celery.handover import FIRST_LOOK, hands_over, next_look
from zonda.executors.celery.slots import SlotReporter

CONSUME = b"consume\n"

NOT_BEGUN_LOOKS = round(1.0 / FIRST_LOOK)
"""Looks (`FIRST_LOOK` apart) at a message whose task thread has not begun it, before giving up on
it: a second's worth."""


class ConsumptionGate:
    """One slot's consumption. The Celery consumer's event loop attaches it, looks at tasks and
    reads commands; the task thread says when a message's tasks begin and end. `_lock` keeps a stop
    and the end of the message's tasks (then its acknowledgement) apart."""

    def __init__(
        self, queues: list[str], consuming: bool, gated: bool, commands: int, reporter: SlotReporter
    ) -> None:
        self.queues = queues
        self.consuming = consuming
        self.gated = gated
        self._commands = commands
        self._reporter = reporter
        self._consumer: Any = None
        self._lock = threading.Lock()
        self._running: tuple[str, ThreadTimes] | None = None
        """The message whose tasks the task thread runs, and where that thread's time goes."""
        self._ended: str | None = None
        self._clock: ThreadClock | None = None

    # -- the consumer's event loop -------------------------------------------------------------

    def attach(self, consumer: Any) -> None:
        """The consumer started (again, after a reconnection): read the supervisor's commands."""
        self._consumer = consumer
        if consumer.hub is not None:
            consumer.hub.add_reader(self._commands, self._on_command)

    def detach(self, consumer: Any) -> None:
        if consumer.hub is not None:
            consumer.hub.remove_reader(self._commands)
        self._consumer = None

    def received(self, request_id: str) -> None:
        """A message arrived: look at its task once it could have handed over."""
        if self.gated and self.consuming and self._consumer is not None and self._consumer.hub is not None:
            self._consumer.hub.call_later(FIRST_LOOK, self._check, request_id, 0)

    def _check(self, request_id: str, looks: int) -> None:
        with self._lock:
            if not self.consuming or self._ended == request_id or self._consumer is None:
                return
            if self._running is None or self._running[0] != request_id:
                if self._running is None and looks < NOT_BEGUN_LOOKS:  # its thread has not begun it yet
                    self._consumer.hub.call_later(FIRST_LOOK, self._check, request_id, looks + 1)
                return
            elapsed, blocked = self._running[1].since()
            if not hands_over(elapsed, blocked):
                self._consumer.hub.call_later(next_look(elapsed), self._check, request_id, looks + 1)
                return
            try:
                self._stop_consuming()
            finally:  # a lost connection comes back without the queues: the slot rests either way
                self._reporter.rested()

    def _on_command(self, *_: Any) -> None:
        data = os.read(self._commands, 4096)
        if not data:  # the supervisor is gone (the slot follows it, `die_with_parent`)
            self._consumer.hub.remove_reader(self._commands)
        elif CONSUME in data and not self.consuming:
            self._start_consuming()

    def _start_consuming(self) -> None:
        queues = self._consumer.app.amqp.queues
        tasks = self._consumer.task_consumer
        for name in self.queues:
            queue = queues.select_add(queues[name])
            if not tasks.consuming_from(name):
                tasks.add_queue(queue)
        tasks.consume()
        self.consuming = True

    def _stop_consuming(self) -> None:
        self.consuming = False
        self._consumer.app.amqp.queues.deselect(self.queues)
        for name in self.queues:
            self._consumer.task_consumer.cancel_by_queue(name)

    # -- the task thread -----------------------------------------------------------------------

    def task_started(self, message_id: str) -> None:
        """The task thread begins the message's tasks (looked at only when the slots take turns)."""
        if not self.gated:
            return
        times = ThreadTimes(self._thread_clock())
        with self._lock:
            self._running = (message_id, times)

    def _thread_clock(self) -> ThreadClock:
        """The calling (task) thread's clock, kept across its tasks: Celery's pool keeps its thread."""
        clock = self._clock
        if clock is None or clock.ident != threading.get_ident():
            if clock is not None:
                clock.close()
            clock = self._clock = ThreadClock()
        return clock

    def task_ended(self, message_id: str) -> None:
        """The task thread is done with the message (before Celery acknowledges it): waits for a
        stop under way, so that the message is acknowledged only once the slot no longer consumes."""
        with self._lock:
            self._running = None
            self._ended = message_id
            if not self.consuming:  # its supervisor may need it to consume again: now, not at its next read
                self._reporter.nudge()


class ThreadClock:
    """A thread's time on a CPU or waiting for one: made in the thread, read from any other.

    Linux's per-thread scheduler statistics give both; what is left of the time that passed, the
    thread was blocked. The statistics file stays open (one `pread` a reading, not an open and a
    close on each task's path). Without it (a kernel built without), the thread's CPU clock gives
    the time on a CPU, and waiting for one counts as blocked."""

    def __init__(self) -> None:
        self.ident = threading.get_ident()
        self._clock = time.pthread_getcpuclockid(self.ident)
        try:
            self._stat: int | None = os.open(
                f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY
            )
        except OSError:
            self._stat = None

    def ran(self) -> float:
        """Seconds the thread was on a CPU or waiting for one, since it started."""
        if self._stat is not None:
            try:
                on_cpu, waiting, _ = os.pread(self._stat, 128, 0).split()
                return (int(on_cpu) + int(waiting)) / 1e9
            except (OSError, ValueError):
                pass  # unreadable statistics: the CPU clock below
        return time.clock_gettime(self._clock)

    def close(self) -> None:
        if self._stat is not None:
            os.close(self._stat)
            self._stat = None


class ThreadTimes:
    """Where a thread spent its time since it began a message's tasks (`ThreadClock`)."""

    def __init__(self, clock: ThreadClock) -> None:
        self._clock = clock
        self._began = time.monotonic()
        self._ran_at_start = clock.ran()

    def since(self) -> tuple[float, float]:
        """Seconds since it began, and how many of them the thread was blocked."""
        elapsed = time.monotonic() - self._began
        return elapsed, max(0.0, elapsed - (self._clock.ran() - self._ran_at_start))


def gate_step(gate: ConsumptionGate) -> type[bootsteps.StartStopStep]:
    """A consumer bootstep that attaches `gate` to the consumer once its task consumer is up."""

    class Gate(bootsteps.StartStopStep):  # type: ignore[misc]
        requires = ("celery.worker.consumer.tasks:Tasks",)

        def start(self, c: Any) -> None:
            gate.attach(c)

        def stop(self, c: Any) -> None:
            gate.detach(c)

        def shutdown(self, c: Any) -> None:
            gate.detach(c)

    return Gate
