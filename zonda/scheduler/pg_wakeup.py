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
"""Seconds a wake-up waits for a connection to an unreachable DB (the API request sending it waits)."""
WAKER_NAME = "zonda waker"
"""The waker connection's `application_name` (`pg_stat_activity` shows it)."""


class PostgresWaker:
    """Sends NOTIFY on the metadata DB, on a connection of its own that it keeps open (autocommit:
    one round trip per wake-up, where a pooled connection took four: its liveness ping, BEGIN, the
    NOTIFY and COMMIT).

    One thread at a time sends; a thread that finds another sending leaves its topic to it and
    returns at once. So when the DB does not answer, one API request waits for the connection
    (`CONNECT_TIMEOUT`), not every request in turn behind it."""

    def __init__(self, engine: Engine) -> None:
        self.conninfo = conninfo(engine.url.render_as_string(hide_password=False))
        self._sending = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: set[str] = set()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def wake(self, topic: str = "runs") -> None:
        with self._pending_lock:
            self._pending.add(topic)
        while self._sending.acquire(blocking=False):
            try:
                with self._pending_lock:
                    topics, self._pending = self._pending, set()
                sent = not topics or self._send(sorted(topics))
            finally:
                self._sending.release()
            with self._pending_lock:
                if not sent:
                    self._pending.clear()  # the DB does not answer: the poll will find those changes too
                if not self._pending:
                    return
        # Another thread sends: it looks at the pending topics again after letting go of the lock.

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _send(self, topics: list[str]) -> bool:
        """NOTIFY each topic; False (logged) if the DB could not be reached."""
        kept = self._conn is not None
        try:
            self._notify(topics)
            return True
        except psycopg.Error as exc:
            self.close()
            if kept:  # the DB may have ended it while idle (a restart, a failover): once more on a new one
                return self._send(topics)
            log.warning("could not notify the scheduler (%s); its poll will pick the change up", exc)
            return False

    def _notify(self, topics: list[str]) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name=WAKER_NAME
            )
        for topic in topics:
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
