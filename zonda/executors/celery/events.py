"""Where reports and heartbeats travel on the broker, and how workers publish them.

- Reports (`TaskStarted`, `TaskFinished`): every scheduler has one durable queue,
  `zonda.events.<scheduler_id>`, named in each request's `reply_to`. Workers publish to the
  broker's default exchange with the queue name as routing key (the RPC convention both AMQP and
  kombu's Redis transport implement), declaring the queue first so a report survives even if its
  scheduler is not consuming yet. A durable queue outlives its scheduler: the one that takes over
  its runs consumes it too (`follow`).
- Heartbeats (`WorkerHeartbeat`): each worker publishes one every `heartbeat_interval` to the
  fanout exchange `zonda.workers`; each executor binds its own exclusive queue to it, so every
  scheduler sees every worker. Heartbeats are not durable: only the latest one matters.

Both are JSON objects sealed for the worker's scope (`codec.seal_report`, `seal_heartbeat`, ADR
0015). A heartbeat names the attempts its worker runs, so only schedulers read it; and a worker of a
tenant's scope speaks only for that tenant's queues and attempts (`vouched_for`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kombu import Exchange, Producer, Queue

from zonda.executors.base import TIRef
from zonda.executors.celery.codec import ProtocolError, Unopened, open_sealed, seal_report, sealed_message
from zonda.executors.celery.routing import tenant_queue
from zonda.executors.celery.sealing import HEARTBEAT, Sealer, WorkerKeys, scope_tenant
from zonda.worker.protocol import PROTOCOL_VERSION, TaskFinished, TaskRequest, WorkerMessage

if TYPE_CHECKING:
    from celery import Celery

REPLY_PREFIX = "zonda.events."
HEARTBEAT_EXCHANGE = Exchange("zonda.workers", type="fanout", durable=False, auto_delete=False)
BOUND_QUEUES = 1024
"""Reply queues a slot keeps a bound declaration of (one per scheduler it has reported to)."""
PUBLISH_RETRY = {"max_retries": 20, "interval_start": 0.0, "interval_step": 0.5, "interval_max": 2.0}
"""About 30 s of retries before a report is given up (the executor then sees the task vanish)."""


def reply_queue_name(scheduler_id: str) -> str:
    """The reply queue of a scheduler."""
    return f"{REPLY_PREFIX}{scheduler_id}"


@functools.lru_cache(maxsize=1024)
def reply_queue(name: str) -> Queue:
    """The declaration of a reply queue; workers and executors must declare it identically.

    One object per name: kombu remembers what a connection declared (and forgets it when the
    connection is replaced) by the entity, so a worker's reports skip the declaration after the
    first without missing it after a reconnect.
    """
    return Queue(name, durable=True, auto_delete=False)


def heartbeat_queue(scheduler_id: str) -> Queue:
    """This scheduler's private subscription to the workers' heartbeats (gone with its connection)."""
    return Queue(
        f"zonda.workers.{scheduler_id}",
        exchange=HEARTBEAT_EXCHANGE,
        durable=False,
        exclusive=True,
        auto_delete=True,
    )


@dataclass(frozen=True, slots=True)
class RunningTask:
    """One attempt a worker is running, and the reply queue of the scheduler that sent it."""

    run_id: str
    task_id: str
    map_index: int
    try_number: int
    reply_to: str = ""
    dag_id: str = ""
    """The attempt's DAG (its tenant's name first); "" where a report, not a request, named it."""

    @property
    def ti_key(self) -> tuple[str, str, int]:
        return (self.run_id, self.task_id, self.map_index)


@dataclass(frozen=True, slots=True)
class WorkerHeartbeat:
    """A worker is alive: who it is, what it listens to and what it runs right now."""

    worker_id: str
    hostname: str
    queues: tuple[str, ...]
    concurrency: int
    running: tuple[RunningTask, ...]
    started_at: datetime
    sent_at: datetime
    cpus: int | None = None
    """CPUs its slots share (`cpus.usable_cpus`); None from a worker that does not say."""
    resting: int = 0
    """Slots that neither consume its queues nor run a task (`handover.py`): they take no message now."""
    version: int = PROTOCOL_VERSION

    def taking_slots(self) -> int:
        """Slots that take tasks: consuming its queues, or running a task (all but the resting)."""
        return self.concurrency - self.resting

    def free_slots(self) -> int:
        """Slots that take the next message of its queues at once: consuming, with no task."""
        return self.taking_slots() - len(self.running)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "WorkerHeartbeat",
            "version": self.version,
            "worker_id": self.worker_id,
            "hostname": self.hostname,
            "queues": list(self.queues),
            "concurrency": self.concurrency,
            "running": [asdict(r) for r in self.running],
            "started_at": self.started_at.isoformat(),
            "sent_at": self.sent_at.isoformat(),
            "cpus": self.cpus,
            "resting": self.resting,
        }

    @classmethod
    def from_json(cls, data: Any) -> WorkerHeartbeat:
        """The heartbeat in `data`; ProtocolError if it is not one this version reads."""
        if not isinstance(data, dict) or data.get("type") != "WorkerHeartbeat":
            raise ProtocolError(f"expected a WorkerHeartbeat, got {type(data).__name__}")
        try:
            return cls(
                worker_id=str(data["worker_id"]),
                hostname=str(data["hostname"]),
                queues=tuple(data["queues"]),
                concurrency=int(data["concurrency"]),
                running=tuple(RunningTask(**r) for r in data["running"]),
                started_at=datetime.fromisoformat(data["started_at"]),
                sent_at=datetime.fromisoformat(data["sent_at"]),
                cpus=None if data.get("cpus") is None else int(data["cpus"]),
                resting=int(data.get("resting") or 0),
                version=int(data.get("version", PROTOCOL_VERSION)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed WorkerHeartbeat: {exc}") from exc


def publish_report(
    producer: Producer, reply_to: str, sealed: dict[str, Any], queue: Queue | None = None
) -> None:
    """Send a sealed report (`codec.seal_report`) to a scheduler's reply queue (persistent; retried
    through broker hiccups). `queue`: the reply queue's declaration bound to a channel, if the
    caller keeps one."""
    producer.publish(
        sealed,
        exchange="",
        routing_key=reply_to,
        serializer="json",
        delivery_mode=2,
        declare=[queue or reply_queue(reply_to)],
        retry=True,
        retry_policy=PUBLISH_RETRY,
    )


class ReportPublisher:
    """A slot's reports, sealed for its scope, on one producer it keeps, with each reply queue's
    declaration bound to a channel.

    Taking a producer from Celery's pool and declaring a new queue object for each report cost a
    slot as much as sending it (0.56 ms of CPU per report on Redis, 0.28 ms without). kombu checks
    whether a connection declared a queue only after binding a copy of an unbound one to the
    channel: that copy was 40 % of a report's CPU (0.38 -> 0.22 ms on Redis). A bound declaration
    is still declared on the channel that publishes, so after a reconnect too. Reports come from
    the task's thread and from the "started" reporter's thread, one at a time (the lock makes sure).
    """

    def __init__(self, app: Celery, keys: WorkerKeys) -> None:
        self.app = app
        self.keys = keys
        self._producer: Producer | None = None
        self._queues: dict[str, Queue] = {}
        self._lock = threading.Lock()

    def publish(self, reply_to: str, message: WorkerMessage) -> None:
        with self._lock:
            if self._producer is None:
                self._producer = self.app.connection_for_write().Producer()
            queue = self._queues.get(reply_to)
            if queue is None:
                if len(self._queues) >= BOUND_QUEUES:
                    self._queues.clear()
                queue = self._queues[reply_to] = reply_queue(reply_to).bind(self._producer.channel)
            publish_report(self._producer, reply_to, seal_report(message, self.keys), queue)


def seal_heartbeat(beat: WorkerHeartbeat, keys: WorkerKeys) -> dict[str, Any]:
    """A worker's heartbeat as it crosses the broker: sealed for the worker's scope."""
    return sealed_message(HEARTBEAT, *keys.seal(HEARTBEAT, json.dumps(beat.to_json()).encode()))


def open_heartbeat(data: Any, sealer: Sealer) -> tuple[WorkerHeartbeat, str]:
    """The heartbeat in a sealed one, and the scope it was sealed for; ProtocolError if it is not a
    sealed heartbeat, no server key opens it (forged or altered), or its content is not a heartbeat."""
    opened, scope = open_sealed(data, HEARTBEAT, sealer)
    return WorkerHeartbeat.from_json(opened), scope


def vouched_for(
    beat: WorkerHeartbeat, scope: str, scope_of: Callable[[TIRef], str | None]
) -> WorkerHeartbeat:
    """What a heartbeat sealed for `scope` may speak for. An attempt this scheduler sent (`scope_of`
    gives its request's scope) counts only from a worker of that scope. Other attempts, and the
    queues, count from the shared workers whatever their tenant, and from a tenant's workers only
    where they are that tenant's: those workers' keys are within reach of the tenant's task code,
    which could otherwise keep another tenant's dead attempt looking alive, or claim slots on its
    queues."""
    tenant = scope_tenant(scope)

    def speaks_for(task: RunningTask) -> bool:
        known = scope_of(task.ti_key)
        if known is not None:
            return known == scope
        return tenant is None or task.dag_id.startswith(f"{tenant}/")

    queues = (
        beat.queues
        if tenant is None
        else tuple(q for q in beat.queues if q.startswith(tenant_queue(tenant, "")))
    )
    return dataclasses.replace(beat, queues=queues, running=tuple(filter(speaks_for, beat.running)))


def unvouched(claimed: WorkerHeartbeat, kept: WorkerHeartbeat) -> str:
    """What `vouched_for` dropped from a heartbeat, for a log line ("" when nothing was): a worker
    misconfigured to consume another tenant's queues, or claims forged with its tenant's keys.
    `kept` is a filtered copy of `claimed`, so equal lengths mean nothing was dropped: the usual
    heartbeat costs no comparison of its attempts."""
    if len(kept.queues) == len(claimed.queues) and len(kept.running) == len(claimed.running):
        return ""
    queues = [q for q in claimed.queues if q not in kept.queues]
    attempts = [
        f"{t.dag_id or '?'}/{t.run_id}/{t.task_id}[{t.map_index}] try {t.try_number}"
        for t in claimed.running
        if t not in kept.running
    ]
    parts = [f"queues {', '.join(queues)}"] if queues else []
    parts += [f"attempts {', '.join(attempts)}"] if attempts else []
    return "; ".join(parts)


def publish_heartbeat(producer: Producer, beat: WorkerHeartbeat, keys: WorkerKeys) -> None:
    """Send a heartbeat, sealed, to every scheduler (transient: a lost beat is replaced by the next one)."""
    producer.publish(
        seal_heartbeat(beat, keys),
        exchange=HEARTBEAT_EXCHANGE,
        routing_key="",
        serializer="json",
        delivery_mode=1,
        declare=[HEARTBEAT_EXCHANGE],
        retry=True,
        retry_policy={"max_retries": 1},
    )


def running_task(request: TaskRequest | Unopened) -> RunningTask:
    """The heartbeat entry of a request a worker runs (or reports it could not open)."""
    return RunningTask(
        request.run_id,
        request.task_id,
        request.map_index,
        request.try_number,
        request.reply_to,
        request.dag_id,
    )


def lost_report(task: RunningTask, error: str, worker: str = "") -> TaskFinished:
    """A failed `TaskFinished` for an attempt whose worker vanished (the task's retries then apply)."""
    return TaskFinished.lost(task.run_id, task.task_id, task.map_index, task.try_number, error, worker)
