"""kombu's Redis transport, with one redis-py client per channel for publishes and acks.

kombu's `Channel.conn_or_acquire` builds a new `redis.Redis` object for every publish, every
delivered message (its `unacked` bookkeeping) and every ack. Building one costs more than the
command it sends (redis-py fills a dict of ~150 response callbacks each time): in W2 it was about
10 % of the CPU of the scheduler and of every worker process. A `redis.Redis` object holds no
connection of its own (it takes one from the channel's pool per command), and it is thread-safe,
so one per channel does the same work. Everything else is kombu's.

Selected by `app.make_app` for `redis://` and `rediss://` broker URLs (Celery's `broker_transport`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):  # type: ignore[misc]
    """A Redis channel that reuses one synchronous client (see the module docstring)."""

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        yield client or self._shared_client

    @cached_property
    def _shared_client(self) -> Any:
        return self._create_client()


class Transport(redis.Transport):  # type: ignore[misc]
    """kombu's Redis transport with `Channel` above."""

    Channel = Channel
