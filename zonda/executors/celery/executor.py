"""`CeleryExecutor`: publish requests as Celery tasks; get reports back on this scheduler's own queue.

Dispatch holds each request for the queue `routing.route` picks and publishes `zonda.run_task`
as fast as that queue's live workers take them, in the scheduler's order (`backlog.py`). Workers report to the
request's `reply_to` (this scheduler's durable queue), which a listener thread consumes and hands
to the loop through a socket pair (`waitables`) and `poll`, within milliseconds. A report is
acknowledged to the broker only at `checkpoint`, once the scheduler has stored it: a scheduler
that dies before its commit, even one instant after the broker handed it the report, leaves the
report for the scheduler that takes over (`follow`; on Redis see `listener.RedisReports`).
Attempts whose worker vanished are reported failed (`tracker.py`). Each attempt gets one outcome:
a second one (a worker's report after `kill`, or a redelivered message's report after the
worker's supervisor reported its slot dead) is acknowledged and dropped. A published request
that does not start is taken as lost only on evidence that a worker should have had it
(`deliveries.py`); the scheduler then has it revoked (`withdraw`) and queues it again, and it is
published under a task id of its own.

There is no outcome journal here: the scheduler hands a task over before storing it as queued
only while its run's lease is fresh, and a scheduler that takes the run over holds back what may
have gone (`commit_before_dispatch`, `takeover_barrier`); tasks keep running when the scheduler
dies (`in_flight_survives_scheduler`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kombu.utils.url import maybe_sanitize_url

from zonda.auth.keys import secret_keys
from zonda.db.workers import Worker
from zonda.errors import ConfigError
from zonda.executors.base import QueuedAttempt, TIRef
from zonda.executors.celery.app import make_app
from zonda.executors.celery.backlog import Backlog
from zonda.executors.celery.codec import ProtocolError, foreign_report, forwarded_report, open_report
from zonda.executors.celery.deliveries import Deliveries
from zonda.executors.celery.events import (
    WorkerHeartbeat,
    open_heartbeat,
    publish_report,
    reply_queue_name,
    unvouched,
    vouched_for,
)
from zonda.executors.celery.listener import Listener
from zonda.executors.celery.publisher import TaskMessage, TaskPublisher
from zonda.executors.celery.routing import DEFAULT_HOOKS, RouteInfo, RoutingHook, hooks_from, route
from zonda.executors.celery.sealing import Sealer
from zonda.executors.celery.tracker import LostWorkerTracker
from zonda.worker.protocol import TaskFinished, TaskRequest, TaskStarted, WorkerMessage

if TYPE_CHECKING:
    from celery import Celery

    from zonda.settings import Settings

log = logging.getLogger(__name__)

REVOKE_BATCH = 1000
"""Task ids per revoke message: a takeover can find thousands of lost requests due together."""

SETTLE_HEARTBEATS = 2
"""Heartbeat intervals a worker must show a free slot before the requests published to its
queues before then count as due (`deliveries.py`)."""

WARNED_WORKERS = 1024
"""Workers whose last unvouched claim is remembered (so it is logged once, not every heartbeat)."""

HeartbeatSink = Callable[[list[Worker]], None]
"""Receives worker heartbeats (e.g. writes them to the DB); called on the executor's own thread."""


def celery_task_id(request: TaskRequest) -> str:
    """The Celery task id of an attempt's first request (known without a lookup, e.g. to revoke it)."""
    return _task_id(request.ti_key, request.try_number)


def republished_task_id(ti: TIRef, try_number: int, queued_at: datetime | None) -> str:
    """The Celery task id of a request published again: it differs from the first one, which is
    revoked, and any scheduler can tell it from the attempt's stored `queued_at`."""
    stamp = round(queued_at.timestamp() * 1000) if queued_at is not None else 0
    return f"{_task_id(ti, try_number)}:{stamp}"


def _task_id(ti: TIRef, try_number: int) -> str:
    return f"{ti[0]}:{ti[1]}:{ti[2]}:{try_number}"


class CeleryExecutor:
    """Runs requests on Celery workers; reports arrive on this scheduler's reply queue."""

    commit_before_dispatch = True
    in_flight_survives_scheduler = True

    def __init__(
        self,
        app: Celery,
        scheduler_id: str,
        *,
        sealer: Sealer,
        max_in_flight: int = 1000,
        queued_per_slot: float = 4.0,
        queued_seconds: float = 0.1,
        bundle_seconds: float = 0.02,
        heartbeat_interval: float = 2.0,
        hooks: Sequence[RoutingHook] = DEFAULT_HOOKS,
        on_worker_heartbeats: HeartbeatSink | None = None,
    ) -> None:
        self.app = app
        self.scheduler_id = scheduler_id
        self.reply_to = reply_queue_name(scheduler_id)
        self.max_in_flight = max_in_flight
        self.heartbeat_interval = heartbeat_interval
        self.hooks = tuple(hooks)
        self._lock = threading.Lock()
        self._inbox: list[tuple[WorkerMessage, Any]] = []
        self._beats: dict[str, Worker] = {}
        self._unvouched: dict[str, str] = {}
        self._queues = {self.reply_to}
        self._tracker = LostWorkerTracker(heartbeat_interval)
        self._backlog = Backlog(queued_per_slot, queued_seconds, bundle_seconds)
        self._deliveries = Deliveries(settle=SETTLE_HEARTBEATS * heartbeat_interval)
        self._inflight: dict[TIRef, TaskRequest] = {}
        self._republished: set[tuple[TIRef, int]] = set()
        self._sealer = sealer
        self._publisher = TaskPublisher(app, sealer)
        self._unsent: list[tuple[list[TaskRequest], str]] = []
        self._next_resend = 0.0
        self._unacked: list[tuple[int, Any]] = []
        self._epoch = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_pending = False
        self._listener = Listener(
            app,
            scheduler_id,
            self.reply_to,
            self._on_report,
            self._on_heartbeat,
            self._on_tick,
            on_connected=self._on_connected,
        )
        self._sink = _HeartbeatSink(self, on_worker_heartbeats) if on_worker_heartbeats else None

    @classmethod
    def from_settings(
        cls, settings: Settings, scheduler_id: str, on_worker_heartbeats: HeartbeatSink | None = None
    ) -> CeleryExecutor:
        return cls(
            make_app(settings),
            scheduler_id,
            sealer=Sealer(secret_keys(settings), settings.tenant_queues),
            max_in_flight=settings.celery_max_in_flight,
            queued_per_slot=settings.celery_queued_per_slot,
            queued_seconds=settings.celery_queued_seconds,
            bundle_seconds=settings.celery_bundle_seconds,
            heartbeat_interval=settings.heartbeat_interval,
            hooks=hooks_from(settings.pool_queues, settings.tenant_queues),
            on_worker_heartbeats=on_worker_heartbeats,
        )

    # -- the executor protocol -----------------------------------------------------------------

    def start(self) -> None:
        if not self._listener.start():
            self._listener.stop()
            broker = maybe_sanitize_url(self.app.conf.broker_url)
            raise ConfigError(f"cannot reach the Celery broker {broker}; start it or fix ZONDA_BROKER_URL")
        if self._sink is not None:
            self._sink.start()

    def reaches_workers(self) -> bool:
        """True while the listener consumes from the broker: without it no outcome comes back."""
        return self._listener.connected()

    def free_slots(self) -> int:
        return max(0, self.max_in_flight - len(self._inflight))

    def submit(self, requests: Sequence[TaskRequest]) -> None:
        """Hold the requests, and publish those their queues have room for (`backlog.py`)."""
        with self._lock:
            for request in (replace(r, reply_to=self.reply_to) for r in requests):
                self._inflight[request.ti_key] = request
                self._backlog.hold(request, self._queue_of(request))
        self._release()

    def adopt(self, requests: Sequence[TaskRequest]) -> None:
        """A dead scheduler's queued attempts: tracked as if published now (they may be on the
        broker, or were still held by it), so each is queued again only once due, like a request
        published here. They take no room in the backlog: most were likely never published."""
        now = time.monotonic()
        with self._lock:
            for request in (replace(r, reply_to=self.reply_to) for r in requests):
                self._inflight[request.ti_key] = request
                self._deliveries.published(request.ti_key, request.try_number, self._queue_of(request), now)

    def takeover_barrier(self) -> None:
        """Another scheduler's runs were just taken over: what it published but never stored may be
        on the broker, so each queue gets a barrier, due on the evidence a lost message needs."""
        with self._lock:
            self._deliveries.barrier(time.monotonic())

    def barrier_due_for(self, request: TaskRequest) -> float:
        """Seconds every request published to this request's queue before the last
        `takeover_barrier` should have reached a worker (`deliveries.py`): past `queued_timeout`,
        none of them will run."""
        queue = self._queue_of(request)
        with self._lock:
            return self._deliveries.barrier_due_for(queue, time.monotonic())

    def waiting_tasks(self) -> dict[tuple[str, str], int]:
        """Queued tasks that have not started, per (tenant, broker queue): held here or published.
        The broker's own queue length leaves out the held ones, so this is what to scale workers
        on (the scheduler writes it with its heartbeat; `/metrics` sums the schedulers')."""
        with self._lock:
            held = list(self._backlog.held(self._inflight))
            published = [
                (self._inflight[ti], q) for ti, q in self._deliveries.waiting() if ti in self._inflight
            ]
        return dict(Counter((RouteInfo.of(r).tenant or "", queue) for r, queue in held + published))

    def undelivered_for(self, ti: TIRef) -> float:
        """Seconds a queued attempt's request should have reached a worker and did not start
        (`deliveries.py`): 0 while it is held here or waits for a busy or absent worker; infinite
        for an attempt taken over from another scheduler that `adopt` was not told of."""
        with self._lock:
            if ti not in self._inflight:
                return math.inf
            return self._deliveries.undelivered_for(ti, time.monotonic()) or 0.0

    def withdraw(self, attempts: Sequence[QueuedAttempt]) -> bool:
        """Revoke queued attempts' requests before they are queued again, so that a message thought
        lost that still reaches a worker is dropped there (Celery checks revoked ids on receipt).
        One revoke per `REVOKE_BATCH` ids: each is a broadcast that every worker slot handles.
        The next request of each attempt gets a task id of its own. False if the broker cannot
        be reached: queue them again later, not now (a second revoke of an id is harmless)."""
        ids = [
            task_id
            for ti, try_number, queued_at in attempts
            for task_id in (_task_id(ti, try_number), republished_task_id(ti, try_number, queued_at))
        ]
        try:
            for start in range(0, len(ids), REVOKE_BATCH):
                self.app.control.revoke(ids[start : start + REVOKE_BATCH])
        except Exception as exc:
            log.warning("could not revoke %d lost request(s) (%s); will try again", len(attempts), exc)
            return False
        with self._lock:
            for ti, try_number, _ in attempts:
                self._inflight.pop(ti, None)
                self._deliveries.forget(ti)
                self._backlog.withdrawn(ti)
                self._republished.add((ti, try_number))
        return True

    def waitables(self) -> Sequence[Any]:
        return [self._wake_r]

    @property
    def epoch(self) -> int:
        return self._epoch

    def poll(self) -> list[WorkerMessage]:
        self._epoch += 1
        with self._lock:
            self._drain_wakeups()
            items, self._inbox = self._inbox, []
        if self._unsent and time.monotonic() >= self._next_resend:
            self._resend()
        messages: list[WorkerMessage] = []
        for message, handle in items:
            if handle is not None:
                self._unacked.append((self._epoch, handle))
            if isinstance(message, TaskFinished):
                with self._lock:
                    current = self._inflight.get(message.ti_key)
                    if current is not None and current.try_number == message.try_number:
                        del self._inflight[message.ti_key]
                        self._republished.discard((message.ti_key, message.try_number))
            messages.append(message)
        return messages

    def kill(self, ti: TIRef, reason: str) -> None:
        """Report the attempt failed with `reason` now, and ask its worker to kill it (SIGKILL)."""
        request = self._inflight.get(ti)
        with self._lock:
            tracked = self._tracker.forget(ti)
        try_number = request.try_number if request is not None else tracked.try_number if tracked else None
        if try_number is None:
            log.warning("kill: no attempt of %s is known to this executor", ti)
            return
        now = datetime.now(UTC)
        lost = TaskFinished(*ti, try_number, ok=False, started_at=now, ended_at=now, error=reason)
        with self._lock:
            self._tracker.finished(lost)
            self._freed(lost)
            task_id = self._task_id(request) if request is not None else _task_id(ti, try_number)
        self._deliver(lost, None)
        self._release()
        try:
            self.app.control.revoke(task_id, terminate=True, signal="SIGKILL")
        except Exception:  # the report is what matters; the worker's attempt may outlive it
            log.exception("could not revoke %s", task_id)

    def follow(self, scheduler_id: str) -> list[TaskFinished]:
        """Also consume `scheduler_id`'s reply queue; its outcomes arrive there (nothing to return now)."""
        name = reply_queue_name(scheduler_id)
        with self._lock:
            if name in self._queues:
                return []
            self._queues.add(name)
        self._listener.follow(name)
        return []

    def checkpoint(self, epoch: int) -> None:
        done = [handle for seen, handle in self._unacked if seen <= epoch]
        self._unacked = [(seen, handle) for seen, handle in self._unacked if seen > epoch]
        self._listener.ack(done)

    def stop(self) -> None:
        if self._sink is not None:
            self._sink.stop()
        self._listener.stop()
        self._publisher.close()
        self._wake_r.close()
        self._wake_w.close()

    def forward(self, message: WorkerMessage, scheduler_id: str) -> None:
        """Send a report to another scheduler's reply queue (one this scheduler got for a run the
        other holds, e.g. when two schedulers took over runs of the same dead one). Publish first,
        then let `checkpoint` acknowledge the original: nothing is lost in between."""
        with self.app.producer_or_acquire() as producer:
            publish_report(producer, reply_queue_name(scheduler_id), forwarded_report(message, self._sealer))

    # -- worker registry -----------------------------------------------------------------------

    def take_worker_heartbeats(self) -> list[Worker]:
        """The latest heartbeat of each worker seen since the last call (for the `workers` table)."""
        with self._lock:
            beats, self._beats = list(self._beats.values()), {}
        return beats

    # -- listener thread -----------------------------------------------------------------------

    def _on_report(self, body: Any, handle: Any) -> None:
        queue = str(handle.delivery_info.get("routing_key") or self.reply_to)
        try:
            message, scope = open_report(body, self._sealer)
        except ProtocolError as exc:
            log.error("dropped a message on %s: %s", queue, exc)
            handle.ack()
            return
        with self._lock:
            request = self._inflight.get(message.ti_key)
            mismatch = foreign_report(message, scope, self._sealer.scope(request.tenant) if request else None)
            if mismatch:
                log.error("dropped a report on %s: %s", queue, mismatch)
                handle.ack()
                return
            if isinstance(message, TaskStarted):
                now = time.monotonic()
                self._tracker.started(message, queue, now)
                self._deliveries.started(message.ti_key, message.try_number, now)
            elif self._tracker.reported(message.ti_key, message.try_number):
                log.info("dropped a second outcome of %s/%s[%s] try %s", *message.ti_key, message.try_number)
                handle.ack()
                return
            else:
                self._tracker.finished(message)
                self._freed(message, (message.ended_at - message.started_at).total_seconds())
        self._deliver(message, handle)

    def _on_heartbeat(self, body: Any, handle: Any) -> None:
        try:
            beat, scope = open_heartbeat(body, self._sealer)
        except ProtocolError as exc:
            log.error("dropped a heartbeat: %s", exc)
            return
        now = time.monotonic()
        with self._lock:
            kept = vouched_for(beat, scope, self._request_scope)
            self._note_unvouched(beat, kept, scope)
            self._tracker.heartbeat(kept, self._queues, now)
            self._deliveries.heartbeat(kept.worker_id, kept.queues, kept.free_slots() > 0, now)
            for task in kept.running:
                self._deliveries.started(task.ti_key, task.try_number, now)
            self._beats[kept.worker_id] = _worker_row(kept)

    def _note_unvouched(self, claimed: WorkerHeartbeat, kept: WorkerHeartbeat, scope: str) -> None:
        """Warn when a worker claims what its scope may not speak for: once per worker and claim, not
        on every heartbeat (with `_lock` held)."""
        dropped = unvouched(claimed, kept)
        if not dropped:
            self._unvouched.pop(claimed.worker_id, None)
            return
        if self._unvouched.get(claimed.worker_id) == dropped:
            return
        if len(self._unvouched) >= WARNED_WORKERS and claimed.worker_id not in self._unvouched:
            self._unvouched.pop(next(iter(self._unvouched)))
        self._unvouched[claimed.worker_id] = dropped
        log.warning(
            "worker %s (keys of scope %s) claims what is not its tenant's, ignored: %s. A tenant's worker "
            "serves only its tenant's queues (<tenant>.<queue>) and attempts: check its --queues and "
            "ZONDA_TENANT_QUEUES; if the worker is not set so, someone holding its tenant's keys forged them",
            claimed.worker_id,
            scope,
            dropped,
        )

    def _request_scope(self, ti: TIRef) -> str | None:
        """The scope this scheduler sealed an attempt's request for (None: not one it runs)."""
        request = self._inflight.get(ti)
        return None if request is None else self._sealer.scope(request.tenant)

    def _on_connected(self) -> None:
        """(Re)connected to the broker: silence while we were cut off says nothing about workers."""
        with self._lock:
            self._tracker.grace(time.monotonic())

    def _on_tick(self) -> None:
        with self._lock:
            lost = self._tracker.lost(time.monotonic())
            for report in lost:
                self._freed(report)
        for report in lost:
            log.warning("%s/%s[%s] try %s: %s", *report.ti_key, report.try_number, report.error)
            self._deliver(report, None)
        self._release()  # the refills for the reports just received, in one publish batch

    def _deliver(self, message: WorkerMessage, handle: Any) -> None:
        """Queue a message for `poll` and wake the loop (any thread)."""
        with self._lock:
            self._inbox.append((message, handle))
        self._wake()

    def _wake(self) -> None:
        """Have the loop call `poll` soon (any thread; one wake-up byte at a time)."""
        with self._lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        with contextlib.suppress(OSError):  # stopped
            self._wake_w.send(b"\0")

    # -- helpers -------------------------------------------------------------------------------

    def _drain_wakeups(self) -> None:
        self._wake_pending = False
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _freed(self, outcome: TaskFinished, ran_for: float | None = None) -> None:
        """An attempt ended: its queue has room for one more (with `_lock` held). `ran_for`: how
        long it ran, from its worker's report (None for an outcome decided here: lost, killed)."""
        current = self._inflight.get(outcome.ti_key)
        if current is not None and current.try_number == outcome.try_number:
            self._backlog.finished(outcome.ti_key, time.monotonic(), ran_for)
            self._deliveries.forget(outcome.ti_key)

    def _queue_of(self, request: TaskRequest) -> str:
        return route(request, RouteInfo.of(request), self.hooks)

    def _task_id(self, request: TaskRequest) -> str:
        """The Celery task id of the request: its attempt's, or its own once published again."""
        if (request.ti_key, request.try_number) in self._republished:
            return republished_task_id(request.ti_key, request.try_number, request.queued_at)
        return celery_task_id(request)

    def _release(self) -> None:
        """Publish the held requests their queues have room for (any thread). The listener calls it
        after each batch of reports it receives (`_on_tick`), so refills do not wait for the loop."""
        with self._lock:
            now = time.monotonic()
            messages = self._backlog.messages(self._tracker.capacity(now), self._inflight, now)
        self._publish(messages)

    def _publish(self, messages: list[tuple[list[TaskRequest], str]]) -> None:
        """Publish, recording each request as published first (its start may be reported before
        `publish` returns)."""
        if not messages:
            return
        now = time.monotonic()
        with self._lock:
            items = [
                TaskMessage(queue, [(self._task_id(r), r) for r in requests]) for requests, queue in messages
            ]
            for requests, queue in messages:
                for r in requests:
                    self._deliveries.published(r.ti_key, r.try_number, queue, now)
        try:
            self._publisher.publish(items)
        except Exception as exc:  # broker down: keep them and publish them again from `poll`
            count = sum(len(requests) for requests, _ in messages)
            log.warning("could not publish %d task(s) (%s); will retry", count, exc)
            self._publisher.close()
            with self._lock:
                for requests, _ in messages:
                    for r in requests:
                        self._deliveries.forget(r.ti_key)
                self._unsent.extend(messages)
                self._next_resend = time.monotonic() + 1.0

    def _resend(self) -> None:
        with self._lock:
            pending, self._unsent = self._unsent, []
            current = [
                (kept, queue)
                for requests, queue in pending
                if (kept := [r for r in requests if self._inflight.get(r.ti_key) is r])
            ]
        self._publish(current)


def _worker_row(beat: WorkerHeartbeat) -> Worker:
    return Worker(
        worker_id=beat.worker_id,
        hostname=beat.hostname,
        queues=list(beat.queues),
        concurrency=beat.concurrency,
        cpus=beat.cpus,
        resting=beat.resting,
        started_at=beat.started_at,
        heartbeat_at=datetime.now(UTC),
        running=[
            {"run_id": r.run_id, "task_id": r.task_id, "map_index": r.map_index, "try_number": r.try_number}
            for r in beat.running
        ],
    )


class _HeartbeatSink:
    """Hands the heartbeats to a callback every interval, on its own thread (a slow DB never
    delays reports; a callback that raises is logged and called again at the next interval)."""

    def __init__(self, executor: CeleryExecutor, callback: HeartbeatSink) -> None:
        self.executor, self.callback = executor, callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zonda-worker-registry", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.executor.heartbeat_interval):
            beats = self.executor.take_worker_heartbeats()
            if not beats:
                continue
            try:
                self.callback(beats)
            except Exception:
                log.exception("recording %d worker heartbeat(s) failed", len(beats))
