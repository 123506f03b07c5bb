"""`zonda worker`: a supervisor of N slot processes, each a Celery worker running one task at a time.

The supervisor runs no task (ADR 0013). It starts the slots (`slot.py`), reads what each runs
over a pipe (`slots.py`), and speaks for all of them to the schedulers:
- heartbeats, one per worker, listing the attempts its slots run (`heartbeat.py`);
- with more slots than CPUs, which slots consume the queues: as many as it has CPUs, and a resting
  one in the place of each that hands its place over (`handover.py`, `gate.py`);
- a slot that dies while it runs an attempt (it crashed, or its task was terminated): the attempt
  is reported lost (`WorkerLostError`) at once, and the slot is started again. When the executor
  already has an outcome for the attempt (it killed the task), it drops this one.
SIGTERM or SIGINT stop it warmly (the slots finish their tasks; a second signal stops them now),
SIGQUIT at once. The slots die with it if it is killed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import selectors
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from zonda.errors import ConfigError
from zonda.executors.celery.app import make_app
from zonda.executors.celery.codec import seal_report
from zonda.executors.celery.cpus import usable_cpus
from zonda.executors.celery.events import RunningTask, lost_report, publish_report
from zonda.executors.celery.gate import CONSUME
from zonda.executors.celery.handover import SlotView, gated, to_wake
from zonda.executors.celery.heartbeat import HeartbeatSender
from zonda.executors.celery.sealing import WorkerKeys, scope_tenant
from zonda.executors.celery.slot import SlotSpec, run_slot
from zonda.executors.celery.slots import SlotState
from zonda.executors.forkserver import preload
from zonda.stopping import StopRequest, on_stop_signals

if TYPE_CHECKING:
    from celery import Celery

    from zonda.settings import Settings

log = logging.getLogger(__name__)
_ctx = multiprocessing.get_context("forkserver")
PRELOAD = preload("zonda.executors.celery.slot")
"""Imported once by the fork server: a slot is a fork (milliseconds), not a Python start (a second).
See `zonda.executors.forkserver`."""

RESTART_DELAY = (0.5, 30.0)
"""A slot that keeps dying soon after its start is started again after 0.5 s, doubling up to 30 s."""

STABLE_AFTER = 10.0
"""A slot that lived this long is started again at once when it dies."""

READ_PAUSE = 0.05
"""After reading the slots' pipes, the supervisor lets lines gather this long before it reads again:
two wake-ups per task cost more than the heartbeats need (a pipe holds seconds of lines)."""


@dataclass
class _Slot:
    index: int
    node: str
    process: BaseProcess
    pipe: Connection
    commands: Connection
    started: float
    state: SlotState = field(default_factory=SlotState)


class WorkerSupervisor:
    """Runs `concurrency` slot processes for one `zonda worker` and speaks for them."""

    def __init__(
        self,
        settings: Settings,
        worker_id: str,
        queues: list[str],
        concurrency: int,
        loglevel: str = "INFO",
        tenant: str | None = None,
    ) -> None:
        self.keys = WorkerKeys(settings.worker_keys)  # ConfigError before anything starts
        if tenant is not None and scope_tenant(self.keys.scope) not in (None, tenant):
            raise ConfigError(
                f"zonda worker --tenant {tenant} holds the keys of scope '{self.keys.scope}': give it those "
                f"`zonda secrets worker-keys --tenant {tenant}` prints (ZONDA_WORKER_KEYS)"
            )
        self.worker_id = worker_id
        self.queues = queues
        self.concurrency = concurrency
        self.loglevel = loglevel
        self.tenant = tenant
        self.cpus = usable_cpus()
        self.gated = settings.celery_slots_take_turns and gated(concurrency, self.cpus)
        self.app: Celery = make_app(settings)
        self.slots: dict[int, _Slot] = {}
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._urgent, self._urgent_in = _ctx.Pipe(duplex=False)
        self._stopping = StopRequest()
        self._delays: dict[int, float] = {}
        self._restart_at: dict[int, float] = {}
        self._heartbeat = HeartbeatSender(
            self.app,
            worker_id,
            queues,
            concurrency,
            settings.heartbeat_interval,
            self.running,
            self.keys,
            self.cpus,
            self.resting,
        )

    def run(self) -> int:
        """Serve until stopped by a signal; returns the exit code."""
        _ctx.set_forkserver_preload(PRELOAD)
        self._stopping = on_stop_signals(now_signals=(signal.SIGQUIT,))
        log.info(
            "worker %s: %d slot process(es) on queue(s) %s",
            self.worker_id,
            self.concurrency,
            ", ".join(self.queues),
        )
        if os.geteuid() == 0:
            log.warning(
                "worker %s runs as root, so task code runs with superuser privileges; "
                "start zonda worker as an unprivileged user",
                self.worker_id,
            )
        for index in range(self.concurrency):
            self._start(index)
        announced = False
        while not self._stopping.stop.is_set():
            read = self._read(0.2)
            self._wake()
            if read:
                self._pause()
            self._start_due()
            if (
                not announced
                and len(self.slots) == self.concurrency
                and all(s.state.ready for s in self.slots.values())
            ):
                announced = True
                self._heartbeat.start()
                log.info("%s ready.", self.worker_id)
        self._shutdown()
        return 0

    def running(self) -> list[RunningTask]:
        """The attempts the slots run now (for heartbeats; any thread)."""
        with self._lock:
            return [s.state.current.task for s in self.slots.values() if s.state.current is not None]

    def resting(self) -> int:
        """Slots that neither consume nor run a task (for heartbeats; any thread)."""
        with self._lock:
            return sum(1 for s in self.slots.values() if not s.state.consuming and s.state.current is None)

    # -- slots ---------------------------------------------------------------------------------

    def _start(self, index: int) -> None:
        read, write = _ctx.Pipe(duplex=False)
        commands_in, commands = _ctx.Pipe(duplex=False)
        node = slot_node(self.worker_id, index + 1)
        with self._lock:
            consuming = not self.gated or sum(s.state.consuming for s in self.slots.values()) < self.cpus
        spec = SlotSpec(node, self.worker_id, self.queues, self.loglevel, self.tenant, consuming, self.gated)
        process = _ctx.Process(target=run_slot, args=(spec, write, commands_in, self._urgent_in), name=node)
        process.start()
        write.close()
        commands_in.close()
        slot = _Slot(index, node, process, read, commands, time.monotonic(), SlotState(consuming))
        with self._lock:
            self.slots[index] = slot
        self._selector.register(read.fileno(), selectors.EVENT_READ, slot)
        self._selector.register(process.sentinel, selectors.EVENT_READ, slot)

    def _read(self, timeout: float) -> int:
        """Apply what the slots wrote and handle the slots that exited; how many were ready."""
        ready = self._selector.select(timeout)
        for key, _ in ready:
            slot: _Slot = key.data
            if key.fd == slot.process.sentinel:
                self._ended(slot)
            elif not self._drain(slot):
                self._selector.unregister(key.fd)
        return len(ready)

    def _pause(self) -> None:
        """Let the slots' lines gather for `READ_PAUSE`, but hand a resting slot's place over at once:
        a slot that rests wakes this through the urgent pipe after it wrote its `rest` line."""
        end = time.monotonic() + READ_PAUSE
        while (left := end - time.monotonic()) > 0 and not self._stopping.stop.is_set():
            if not self._urgent.poll(left):
                return
            os.read(self._urgent.fileno(), 4096)
            self._read(0)
            self._wake()

    def _drain(self, slot: _Slot) -> bool:
        """Apply what the slot wrote (its pipe is readable); False once the pipe is closed."""
        data = os.read(slot.pipe.fileno(), 65536)
        if data:
            with self._lock:
                slot.state.feed(data)
        return bool(data)

    def _ended(self, slot: _Slot) -> None:
        """The slot exited. Report the attempt it was running, then start it again."""
        self._selector.unregister(slot.process.sentinel)
        if slot.pipe.fileno() in self._selector.get_map():
            while slot.pipe.poll() and self._drain(slot):
                pass
            self._selector.unregister(slot.pipe.fileno())
        slot.pipe.close()
        slot.commands.close()
        slot.process.join()
        code = slot.process.exitcode or 0
        with self._lock:
            del self.slots[slot.index]
        current = slot.state.current
        if current is not None:
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            error = f"WorkerLostError: the process running the task on worker {self.worker_id} died ({how})"
            log.error(
                "%s/%s[%s] try %s: %s",
                current.task.run_id,
                current.task.task_id,
                current.task.map_index,
                current.task.try_number,
                error,
            )
            self._report_lost(current.task, error)
        if self._stopping.stop.is_set():
            return
        lived = time.monotonic() - slot.started
        if lived >= STABLE_AFTER:
            self._delays.pop(slot.index, None)
        delay = 0.0 if lived >= STABLE_AFTER else self._next_delay(slot.index)
        if delay:
            log.warning("slot %s exited after %.1f s; starting it again in %.1f s", slot.node, lived, delay)
        self._restart_at[slot.index] = time.monotonic() + delay

    def _wake(self) -> None:
        """Start resting slots consuming until as many consume as the worker has CPUs (`handover.py`)."""
        if not self.gated:
            return
        with self._lock:
            views = [
                SlotView(s.index, s.state.ready, s.state.consuming, s.state.current is not None)
                for s in self.slots.values()
            ]
            woken = [self.slots[index] for index in to_wake(views, self.cpus)]
            for slot in woken:
                slot.state.consuming = True
        for slot in woken:
            try:
                os.write(slot.commands.fileno(), CONSUME)
            except OSError:  # it died: `_ended` reports it and starts it again
                log.debug("slot %s exited before it could consume", slot.node)
        if woken:
            self._heartbeat.soon()

    def _next_delay(self, index: int) -> float:
        first, most = RESTART_DELAY
        delay = min(self._delays.get(index, first / 2) * 2, most)
        self._delays[index] = delay
        return delay

    def _start_due(self) -> None:
        now = time.monotonic()
        for index, at in list(self._restart_at.items()):
            if at <= now:
                del self._restart_at[index]
                self._start(index)

    def _report_lost(self, task: RunningTask, error: str) -> None:
        try:
            with self.app.producer_or_acquire() as producer:
                report = seal_report(lost_report(task, error, self.worker_id), self.keys)
                publish_report(producer, task.reply_to, report)
        except Exception:  # the scheduler's tracker still finds the attempt missing from heartbeats
            log.exception("could not report the lost attempt of %s/%s", task.run_id, task.task_id)

    # -- stopping ------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Stop the slots (warm: SIGTERM, they finish their task; cold: SIGQUIT) and wait for them.
        A cold stop asked for while waiting (a second signal) is passed on to the slots."""
        cold = self._stopping.now.is_set()
        log.info("worker %s: stopping %s", self.worker_id, "now" if cold else "after running tasks")
        self._signal_slots(signal.SIGQUIT if cold else signal.SIGTERM)
        while self._selector.get_map():
            self._read(0.5)
            if self._stopping.now.is_set() and not cold:
                cold = True
                self._signal_slots(signal.SIGQUIT)
        self._heartbeat.stop()
        self._selector.close()
        self._urgent.close()
        self._urgent_in.close()

    def _signal_slots(self, signum: int) -> None:
        with self._lock:
            slots = list(self.slots.values())
        for slot in slots:
            _signal(slot.process, signum)


def slot_node(worker_id: str, number: int) -> str:
    """The Celery node name of a slot: `name-N@host` for the worker `name@host`."""
    name, _, host = worker_id.partition("@")
    return f"{name}-{number}@{host}"


def _signal(process: BaseProcess, signum: int) -> None:
    if process.pid is not None and process.exitcode is None:
        os.kill(process.pid, signum)
