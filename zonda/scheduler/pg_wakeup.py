"""Wake-ups across machines through PostgreSQL LISTEN/NOTIFY (channel `zonda_scheduler`).

The payload is the topic. A dropped listening connection is re-opened on the scheduler's next
safety-net poll; until then the poll itself finds the work, so nothing is lost, only delayed.
"""

from __future__ import annotations

import logging
import socket
import threading

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from zonda.scheduler.wakeup import TOPICS

log = logging.getLogger(__name__)
CHANNEL = "zonda_scheduler"
CONNECT_TIMEOUT = 5
"""Seconds a wake-up waits for a connection to an unreachable DB (the API's requests wait with it)."""
WAKER_NAME = "zonda waker"
"""The waker connection's `application_name` (`pg_stat_activity` shows it)."""


class PostgresWaker:
    """Sends NOTIFY on the metadata DB, on a connection of its own that it keeps open (autocommit:
    one round trip per wake-up, where a pooled connection took four: its liveness ping, BEGIN, the
    NOTIFY and COMMIT). Threads of one process take turns on it."""

    def __init__(self, engine: Engine) -> None:
        self.conninfo = conninfo(engine.url.render_as_string(hide_password=False))
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def wake(self, topic: str = "runs") -> None:
        with self._lock:
            # A kept connection may have been ended by the DB while idle (a restart, a failover):
            # then once more on a new one, as a pool's liveness ping would; a new one is tried once.
            for fresh in (self._conn is None, True):
                try:
                    self._notify(topic)
                    return
                except psycopg.Error as exc:
                    self.close()
                    if fresh:
                        log.warning(
                            "could not notify the scheduler (%s); its poll will pick the change up", exc
                        )
                        return

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _notify(self, topic: str) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name=WAKER_NAME
            )
        self._conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, topic))


def conninfo(db_url: str) -> str:
    """What psycopg connects with, from a SQLAlchemy URL of the metadata DB."""
    return make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresListener:
    """The scheduler's end: a LISTENing connection to wait on."""

    def __init__(self, db_url: str) -> None:
        self.conninfo = conninfo(db_url)
        self._idle_r, self._idle_w = socket.socketpair()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self.check()

    def fileno(self) -> int:
        return self._conn.fileno() if self._conn is not None else self._idle_r.fileno()

    def check(self) -> bool:
        """(Re)open the listening connection if needed; True if it is open."""
        if self._conn is not None and not self._conn.closed:
            return True
        try:
            self._conn = psycopg.connect(self.conninfo, autocommit=True)
            self._conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            log.warning("cannot LISTEN on the metadata DB (%s); relying on polls until it is back", exc)
            self._conn = None
            return False
        return True

    def drain(self) -> set[str]:
        """Topics of the notifications received; every topic if the connection had to be re-opened."""
        if self._conn is None:
            return set()
        topics: set[str] = set()
        try:
            self._conn.pgconn.consume_input()
            while (note := self._conn.pgconn.notifies()) is not None:
                topics.add(note.extra.decode(errors="replace"))
        except psycopg.Error as exc:
            log.warning("lost the LISTEN connection (%s); re-opening it", exc)
            self._conn.close()
            self._conn = None
            self.check()
            return set(TOPICS)
        return topics & TOPICS

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._idle_r.close()
        self._idle_w.close()
