"""Publish `zonda.run_task` messages in Celery's task protocol 2, with one kombu producer.

`Celery.send_task` is general: it resolves routes and options, builds the message through
`amqp.as_task_v2`, fires publish signals, and takes a producer from a pool, for every call. It
was about a fifth of the scheduler's CPU in W2. Zonda always publishes one task type with one
argument to a named queue, so the message is built here directly: the same headers, properties
and body a `send_task` call makes (Celery protocol 2), on a producer the executor keeps.

When Celery's `task-sent` events are on (`ZONDA_CELERY_EVENTS`), publishing goes through
`send_task`, which sends them.

Each request goes sealed for its tenant's scope (`sealing.py`). A message carries one request (its
task id is the attempt's) or several of one queue (`backlog.bundle`; its task id is the first
one's with `+<how many more>`). Each attempt keeps its own task id, which revokes name
(`codec.encode_task_message`; `task.py` honours them per attempt).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celery.utils.nodenames import anon_nodename

from zonda.executors.celery.app import TASK_NAME
from zonda.executors.celery.codec import encode_task_message
from zonda.executors.celery.sealing import Sealer
from zonda.worker.protocol import TaskRequest

if TYPE_CHECKING:
    from celery import Celery
    from kombu import Producer

PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.0, "interval_step": 0.2, "interval_max": 0.5}
"""Short: a broker outage must not stall the loop; unsent requests are published again later."""

PUBLISH_BATCH = 16
"""Broker commands sent per round trip: enough to amortize it, few enough that workers get the
first tasks of a large fan-out while the rest are still being encoded."""

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


@dataclass(frozen=True)
class TaskMessage:
    """One `zonda.run_task` message: the requests it carries to `queue`, each with its attempt's task id."""

    queue: str
    members: list[tuple[str, TaskRequest]]

    @property
    def task_id(self) -> str:
        first = self.members[0][0]
        return first if len(self.members) == 1 else f"{first}+{len(self.members) - 1}"

    @property
    def argsrepr(self) -> str:
        return "(" + ", ".join(f"{r.dag_id}/{r.run_id}/{r.task_id}" for _, r in self.members) + ")"


class TaskPublisher:
    """Publishes requests as `zonda.run_task` on one connection, one thread at a time (the loop's
    dispatches and the listener's refills share it)."""

    def __init__(self, app: Celery, sealer: Sealer) -> None:
        self.app = app
        self.sealer = sealer
        self.origin = anon_nodename()
        self._producer: Producer | None = None
        self._declared: set[str] = set()
        self._lock = threading.Lock()

    def publish(self, items: Sequence[TaskMessage]) -> None:
        """Send the messages; a new queue is declared first, as Celery would.

        The items go out as one batch where the transport has them (Redis: one pipelined round trip
        instead of one per task), so a loop step that made many tasks ready publishes them at once.
        """
        with self._lock:
            self._publish(items)

    def _publish(self, items: Sequence[TaskMessage]) -> None:
        if self.app.conf.task_send_sent_event:
            for message in items:
                self._send_task(message)
            return
        producer = self._get_producer()
        for queue in dict.fromkeys(m.queue for m in items if m.queue not in self._declared):
            producer.maybe_declare(self.app.amqp.queues[queue], retry=True, **PUBLISH_RETRY)
            self._declared.add(queue)
        with producer.batch(max_size=PUBLISH_BATCH):
            for message in items:
                task_id = message.task_id
                producer.publish(
                    ([encode_task_message(message.members, self.sealer)], {}, _EMBED),
                    exchange="",
                    routing_key=message.queue,
                    serializer="json",
                    headers=self._headers(task_id, message.argsrepr),
                    correlation_id=task_id,
                    reply_to="",
                    delivery_mode=2,
                    retry=True,
                    retry_policy=PUBLISH_RETRY,
                )

    def _send_task(self, message: TaskMessage) -> None:
        """Publish through `Celery.send_task`, which also sends the `task-sent` event."""
        self.app.send_task(
            TASK_NAME,
            args=[encode_task_message(message.members, self.sealer)],
            queue=message.queue,
            task_id=message.task_id,
            argsrepr=message.argsrepr,
            kwargsrepr="{}",
            retry=True,
            retry_policy=PUBLISH_RETRY,
        )

    def close(self) -> None:
        """Drop the connection (after a failed publish the next one connects again)."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):  # a broken connection is dropped either way
                producer.connection.release()

    def _get_producer(self) -> Producer:
        if self._producer is None:
            self._producer = self.app.connection_for_write().Producer()
        return self._producer

    def _headers(self, task_id: str, argsrepr: str) -> dict[str, Any]:
        """The headers `amqp.as_task_v2` writes for a task with no options set."""
        return {
            "lang": "py",
            "task": TASK_NAME,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": argsrepr,
            "kwargsrepr": "{}",
            "origin": self.origin,
            "ignore_result": True,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        }
