"""A slot process of `zonda worker`: one Celery worker that runs one task at a time.

Forked by the supervisor's fork server (this module is preloaded there, so a slot starts in
milliseconds), with the settings in its environment and the write end of its status pipe. It runs
at `ZONDA_WORKER_NICE`, as local workers do, so that busy tasks do not delay the supervisor's
heartbeats (nor a scheduler on the same machine). The slot fetches and acknowledges its own
messages on its own connection and runs the task in a thread of its own (Celery's `threads` pool
of one): nothing is handed over between processes, and the consumer stays responsive while the
task runs (broker heartbeats, control commands, connection loss). ADR 0013.

A thread cannot be stopped, so terminating the task (a revoke with `terminate`, or Celery
cancelling it when the broker connection is lost) ends the slot process: the supervisor reports
the attempt and starts a new slot.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from dataclasses import dataclass
from multiprocessing.connection import Connection
from signal import SIGKILL
from typing import Any

from celery.concurrency.thread import TaskPool
from celery.exceptions import SecurityWarning
from celery.signals import task_received, worker_ready

from zonda.executors.celery.app import make_app
from zonda.executors.celery.gate import ConsumptionGate, gate_step
from zonda.executors.celery.slots import SlotReporter
from zonda.executors.celery.task import SlotRuntime, register_task
from zonda.executors.local.worker_main import die_with_parent
from zonda.settings import Settings


class SlotPool(TaskPool):  # type: ignore[misc]
    """Celery's thread pool, whose only job is terminated by ending the process (`pid` is this one)."""

    def terminate_job(self, pid: int, signal: int | None = None) -> None:
        os.kill(pid, SIGKILL)


@dataclass(frozen=True)
class SlotSpec:
    """What the supervisor tells a slot: its Celery node name, whom it reports as, what it consumes,
    whether it starts consuming or resting, and whether it takes turns with the others (`handover.py`)."""

    node: str
    worker_id: str
    queues: list[str]
    loglevel: str
    tenant: str | None
    consuming: bool
    gated: bool


PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")
"""Celery's loggers of a line per task received and per task done."""


def quiet_per_task_lines(loglevel: str) -> None:
    """Keep Celery's two INFO lines per task for `--loglevel DEBUG`: at hundreds of tasks per second
    they cost a slot more CPU than a trivial task, and each attempt has its own log anyway."""
    if logging.getLevelName(loglevel.upper()) != logging.DEBUG:
        for name in PER_TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def run_slot(spec: SlotSpec, status: Connection, commands: Connection, urgent: Connection) -> None:
    """Serve tasks until stopped (SIGTERM: finish the running task first); the exit code says how it ended.
    The slot writes what it runs to `status` (and wakes its supervisor through `urgent` when it
    rests), and reads its supervisor's commands from `commands`."""
    die_with_parent(os.getppid())
    settings = Settings()
    if settings.worker_nice:
        os.nice(settings.worker_nice)
    app = make_app(settings)
    reporter = SlotReporter(status.fileno(), urgent.fileno())
    runtime = SlotRuntime(app, settings)
    gate = ConsumptionGate(spec.queues, spec.consuming, spec.gated, commands.fileno(), reporter)
    register_task(app, runtime, spec.worker_id, reporter, gate, spec.tenant)
    app.steps["consumer"].add(gate_step(gate))

    def on_ready(**_: Any) -> None:
        # After Celery set up logging (it replaces the root logger's handlers), before the first task.
        runtime.init()
        reporter.ready()

    def on_received(request: Any, **_: Any) -> None:
        gate.received(str(request.id))

    worker_ready.connect(on_ready, weak=False)
    task_received.connect(on_received, weak=False)
    quiet_per_task_lines(spec.loglevel)
    warnings.filterwarnings("ignore", category=SecurityWarning)  # the supervisor warns once
    worker = app.Worker(
        hostname=spec.node,
        queues=spec.queues,
        concurrency=1,
        pool_cls=SlotPool,
        loglevel=spec.loglevel,
        without_mingle=True,
        without_gossip=True,
        quiet=True,
    )
    if not spec.consuming:
        app.amqp.queues.deselect(spec.queues)
    worker.start()
    sys.exit(int(worker.exitcode or 0))
