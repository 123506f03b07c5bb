"""The executor's consumer thread: this scheduler's reply queues and the workers' heartbeats.

One thread owns one broker connection (kombu connections are not thread-safe), so everything
that touches it happens here: consuming, starting to consume a followed scheduler's queue, and
acknowledging reports once the scheduler has stored them (`ack`). Reports are acknowledged
manually; heartbeats are not (they are transient). If the connection breaks, the thread connects
again and consumes every queue again; reports it had not acknowledged are delivered again, which
the scheduler ignores as stale. Every `tick` seconds `on_tick` runs (lost-worker detection).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kombu import Consumer

from zonda.executors.celery.events import heartbeat_queue, reply_queue

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

Callback = Callable[[Any, Any], None]
"""(decoded JSON body, kombu message)"""


class Listener:
    """Consumes reply queues and heartbeats on a daemon thread until `stop()`."""

    def __init__(
        self,
        app: Celery,
        scheduler_id: str,
        own_queue: str,
        on_report: Callback,
        on_heartbeat: Callback,
        on_tick: Callable[[], None],
        tick: float = 0.05,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.scheduler_id = scheduler_id
        self.on_report, self.on_heartbeat, self.on_tick = on_report, on_heartbeat, on_tick
        self.tick = tick
        self.on_connected = on_connected
        self._queues = [own_queue]
        self._commands: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._next_heartbeat = 0.0
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zonda-celery-listener", daemon=True)

    def start(self, timeout: float = 10.0) -> bool:
        """Start consuming; True once the queues are consumed (False if the broker did not answer in time)."""
        self._thread.start()
        return self._ready.wait(timeout)

    def follow(self, queue_name: str) -> None:
        self._commands.put(("follow", queue_name))

    def ack(self, messages: list[Any]) -> None:
        if messages:
            self._commands.put(("ack", messages))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self.app.connection_for_read(heartbeat=10) as connection:
                    self._serve(connection)
            except Exception as exc:  # broker gone: reconnect (reports not acked come again)
                self._ready.clear()
                log.warning("reply queue consumer lost the broker (%s); reconnecting", exc)
                self._stop.wait(1.0)

    def _serve(self, connection: Any) -> None:
        reports = Consumer(
            connection.channel(),
            queues=[reply_queue(name) for name in self._queues],
            callbacks=[self.on_report],
            accept=["json"],
            no_ack=False,
        )
        beats = Consumer(
            connection.channel(),
            queues=[heartbeat_queue(self.scheduler_id)],
            callbacks=[self.on_heartbeat],
            accept=["json"],
            no_ack=True,
        )
        with reports, beats:
            if self.on_connected is not None:
                self.on_connected()
            self._ready.set()
            while not self._stop.is_set():
                self._apply_commands(reports)
                self._drain(connection)
                self.on_tick()
            self._apply_commands(reports)

    def _drain(self, connection: Any) -> None:
        with contextlib.suppress(TimeoutError):  # nothing arrived within a tick (socket.timeout)
            connection.drain_events(timeout=self.tick)
        now = time.monotonic()
        if now >= self._next_heartbeat:  # AMQP heartbeats, also while reports keep arriving
            connection.heartbeat_check()
            self._next_heartbeat = now + 1.0

    def _apply_commands(self, reports: Consumer) -> None:
        while True:
            try:
                kind, value = self._commands.get_nowait()
            except queue.Empty:
                return
            if kind == "follow" and value not in self._queues:
                self._queues.append(value)
                restored = restore_unacked_reports(reports.channel, value)
                reports.add_queue(reply_queue(value))
                reports.consume()
                log.info("following %s (%d unacknowledged report(s) put back)", value, restored)
            elif kind == "ack":
                _ack_all(value)


def restore_unacked_reports(channel: Any, queue_name: str) -> int:
    """Redis only: put back the reports of `queue_name` that its dead consumer took but never acked.

    RabbitMQ requeues a consumer's unacknowledged messages as soon as its connection drops. Redis
    keeps them aside until the transport's visibility timeout (hours, see
    `celery_visibility_timeout`), so the scheduler that takes over restores them itself, through
    kombu's Redis QoS (`unacked_key`, `restore_by_tag`: one transaction per message, so two
    followers never both restore one). Returns how many were put back.
    """
    qos: Any = getattr(channel, "qos", None)
    if not hasattr(qos, "restore_by_tag"):
        return 0
    restored = 0
    with channel.conn_or_acquire() as client:
        for tag, raw in client.hscan_iter(qos.unacked_key):
            _, exchange, routing_key = json.loads(raw)
            if not exchange and routing_key == queue_name:
                qos.restore_by_tag(tag, client, leftmost=True)
                restored += 1
    return restored


def _ack_all(messages: list[Any]) -> None:
    for message in messages:
        try:
            message.ack()
        except Exception:  # its channel is gone (reconnected): the broker delivers it again
            log.debug("could not ack a report; it will be delivered again", exc_info=True)
