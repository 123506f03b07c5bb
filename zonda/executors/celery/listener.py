"""The executor's consumer thread: this scheduler's reply queues and the workers' heartbeats.

One thread owns the broker connection (kombu connections are not thread-safe), so everything
that touches it happens here: consuming, starting to consume a followed scheduler's queue, and
acknowledging reports once the scheduler has stored them (`ack`). Reports are acknowledged
manually; heartbeats are not (they are transient). If the connection breaks, the thread connects
again and consumes every queue again; reports it had not acknowledged are delivered again, which
the scheduler ignores as stale. `on_tick` runs after each batch of messages received, and at
least every `tick` seconds (lost-worker detection, refills).

A report taken from the broker must stay recoverable until it is acknowledged, even if this
process dies the next instant. RabbitMQ does that itself (it requeues what a dead connection had
not acknowledged). On Redis, kombu's consumer pops a message (BRPOP) and records it as
unacknowledged only once the reply is read: a scheduler frozen or killed in between (a busy
machine deschedules it for milliseconds) loses the report, and the attempt looks lost. So on Redis
reports are taken by `RedisReports`, which pops and records in one server-side step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import redis
from kombu import Consumer

from zonda.executors.celery.events import heartbeat_queue, reply_queue

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

Callback = Callable[[Any, Any], None]
"""(decoded JSON body, message handle with `ack()` and `delivery_info`)"""

TAKE_AT_ONCE = 500
"""Reports taken from Redis in one step at most."""


class Reports(Protocol):
    """How one broker connection delivers reports to `on_report` until they are acknowledged."""

    def follow(self, queue_name: str) -> int:
        """Also consume `queue_name`; returns how many reports a dead consumer held were put back."""
        ...

    def receive(self, connection: Any, timeout: float) -> None:
        """Deliver what arrived (reports and heartbeats), waiting up to `timeout` seconds for it."""
        ...

    def ack(self, messages: list[Any]) -> None:
        """The scheduler stored these reports: the broker may forget them."""
        ...


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

    def connected(self) -> bool:
        """True while the reply and heartbeat queues are consumed (the broker is reachable)."""
        return self._ready.is_set()

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
        beats = Consumer(
            connection.channel(),
            queues=[heartbeat_queue(self.scheduler_id)],
            callbacks=[self.on_heartbeat],
            accept=["json"],
            no_ack=True,
        )
        channel = connection.channel()
        with contextlib.ExitStack() as stack:
            reports: Reports
            if is_redis(channel):
                reports = RedisReports(channel, self._queues, self.on_report)
            else:
                reports = stack.enter_context(ConsumedReports(channel, self._queues, self.on_report))
            stack.enter_context(beats)
            if self.on_connected is not None:
                self.on_connected()
            self._ready.set()
            while not self._stop.is_set():
                self._apply_commands(reports)
                reports.receive(connection, self.tick)
                self._heartbeat_check(connection)
                self.on_tick()
            self._apply_commands(reports)

    def _heartbeat_check(self, connection: Any) -> None:
        now = time.monotonic()
        if now >= self._next_heartbeat:  # AMQP heartbeats, also while reports keep arriving
            connection.heartbeat_check()
            self._next_heartbeat = now + 1.0

    def _apply_commands(self, reports: Reports) -> None:
        while True:
            try:
                kind, value = self._commands.get_nowait()
            except queue.Empty:
                return
            if kind == "follow" and value not in self._queues:
                self._queues.append(value)
                restored = reports.follow(value)
                log.info("following %s (%d unacknowledged report(s) put back)", value, restored)
            elif kind == "ack":
                reports.ack(value)


class ConsumedReports:
    """Reports through a kombu consumer (RabbitMQ: the broker takes back what a dead consumer held)."""

    def __init__(self, channel: Any, queues: Sequence[str], on_report: Callback) -> None:
        self.channel = channel
        self._consumer = Consumer(
            channel,
            queues=[reply_queue(name) for name in queues],
            callbacks=[on_report],
            accept=["json"],
            no_ack=False,
        )

    def __enter__(self) -> ConsumedReports:
        self._consumer.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._consumer.__exit__(*exc)

    def follow(self, queue_name: str) -> int:
        restored = restore_unacked_reports(self.channel, queue_name)
        self._consumer.add_queue(reply_queue(queue_name))
        self._consumer.consume()
        return restored

    def receive(self, connection: Any, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):  # nothing arrived in time (socket.timeout)
            connection.drain_events(timeout=timeout)

    def ack(self, messages: list[Any]) -> None:
        for message in messages:
            try:
                message.ack()
            except Exception:  # its channel is gone (reconnected): the broker delivers it again
                log.debug("could not ack a report; it will be delivered again", exc_info=True)


_TAKE = """
local taken = {}
local limit = tonumber(ARGV[2])
for i = 3, #KEYS do
  local name = ARGV[i]
  while #taken < 2 * limit do
    local raw = redis.call('RPOP', KEYS[i])
    if not raw then break end
    local ok, payload = pcall(cjson.decode, raw)
    local tag = ok and type(payload) == 'table' and type(payload['properties']) == 'table'
      and payload['properties']['delivery_tag']
    if type(tag) ~= 'string' then tag = ARGV[#KEYS + 1] .. ':' .. #taken end
    redis.call('HSET', KEYS[1], tag, '[' .. raw .. ', "", ' .. cjson.encode(name) .. ']')
    redis.call('ZADD', KEYS[2], ARGV[1], tag)
    taken[#taken + 1] = tag
    taken[#taken + 1] = raw
  end
end
return taken
"""
"""Pop up to ARGV[2] reports from the queues KEYS[3..] (named ARGV[3..]) and record each in kombu's
unacked hash KEYS[1] and index KEYS[2] (score ARGV[1], the time) in the same step: a report is
always in its queue or in the hash, where `restore_unacked_reports` finds it. A message without a
kombu delivery tag gets one from the last ARGV. Returns tag, raw, tag, raw, ..."""


class RedisReports:
    """Reports on Redis, taken and recorded as unacknowledged in one step (see the module docstring).

    Waiting does not take anything either: `BLMOVE q q RIGHT RIGHT` returns the next report and
    leaves it where it was. Followed queues are only looked at every `receive` (their reports are
    few: the attempts a dead scheduler had in flight). The records are kombu's own, so a follower's
    `restore_unacked_reports` and kombu's visibility timeout treat them like any other.
    """

    def __init__(self, channel: Any, queues: Sequence[str], on_report: Callback) -> None:
        self.channel = channel
        self.queues = list(queues)
        self.on_report = on_report
        self._client = redis.Redis(connection_pool=channel.pool)
        self._take = self._client.register_script(_TAKE)
        self._keys = (channel.unacked_key, channel.unacked_index_key)

    def follow(self, queue_name: str) -> int:
        restored = restore_unacked_reports(self.channel, queue_name)
        self.queues.append(queue_name)
        return restored

    def receive(self, connection: Any, timeout: float) -> None:
        if not self._deliver_taken():
            own = self.queues[0]
            self._client.blmove(own, own, timeout, "RIGHT", "RIGHT")  # type: ignore[arg-type]  # Redis takes fractions
            self._deliver_taken()
        for _ in range(TAKE_AT_ONCE):  # heartbeats, one per call
            try:
                connection.drain_events(timeout=0)
            except TimeoutError:
                return

    def ack(self, messages: list[Any]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for message in messages:
            pipe.zrem(self._keys[1], message.delivery_tag)
            pipe.hdel(self._keys[0], message.delivery_tag)
        pipe.execute()

    def _deliver_taken(self) -> int:
        """Take what the queues hold and hand it to `on_report`; how many were taken."""
        names = self.queues
        taken = self._take(
            keys=[*self._keys, *names], args=[time.time(), TAKE_AT_ONCE, *names, uuid.uuid4().hex]
        )
        for tag, raw in zip(taken[::2], taken[1::2], strict=True):
            message = RedisReport(self, tag if isinstance(tag, str) else tag.decode(), raw)
            try:
                body = message.decode()
            except Exception as exc:  # not a kombu JSON message: nobody can read it
                log.error("dropped a message on %s: %s", message.delivery_info.get("routing_key"), exc)
                message.ack()
                continue
            self.on_report(body, message)
        return len(taken) // 2


class RedisReport:
    """A report taken from Redis: its body, where it came from, and `ack()`."""

    def __init__(self, reports: RedisReports, tag: str, raw: bytes) -> None:
        self.reports = reports
        self.delivery_tag = tag
        self._raw = raw
        self.delivery_info: dict[str, Any] = {}

    def decode(self) -> Any:
        """The JSON body of the kombu message (ValueError if it is not one)."""
        payload = json.loads(self._raw)
        properties = payload["properties"]
        self.delivery_info = dict(properties.get("delivery_info") or {})
        if payload.get("content-type") != "application/json":
            raise ValueError(f"content type {payload.get('content-type')!r} is not JSON")
        body = self.reports.channel.decode_body(payload["body"], properties.get("body_encoding"))
        return json.loads(body)

    def ack(self) -> None:
        self.reports.ack([self])


def is_redis(channel: Any) -> bool:
    """Whether `channel` is one of kombu's Redis channels (kombu's unacked hash, restorable by tag)."""
    return hasattr(getattr(channel, "qos", None), "restore_by_tag")


def restore_unacked_reports(channel: Any, queue_name: str) -> int:
    """Redis only: put back the reports of `queue_name` that its dead consumer took but never acked.

    RabbitMQ requeues a consumer's unacknowledged messages as soon as its connection drops. Redis
    keeps them aside until the transport's visibility timeout (hours, see
    `celery_visibility_timeout`), so the scheduler that takes over restores them itself, through
    kombu's Redis QoS (`unacked_key`, `restore_by_tag`: one transaction per message, so two
    followers never both restore one). Returns how many were put back.
    """
    if not is_redis(channel):
        return 0
    qos: Any = channel.qos
    restored = 0
    with channel.conn_or_acquire() as client:
        for tag, raw in client.hscan_iter(qos.unacked_key):
            _, exchange, routing_key = json.loads(raw)
            if not exchange and routing_key == queue_name:
                qos.restore_by_tag(tag, client, leftmost=True)
                restored += 1
    return restored
