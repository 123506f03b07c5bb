"""Wake-ups across machines through PostgreSQL LISTEN/NOTIFY (channel `zonda_scheduler`).

The payload is the topic. A dropped listening connection is re-opened on the scheduler's next
safety-net poll; until then the poll itself finds the work, so nothing is lost, only delayed.
"""

from __future__ import annotations

import logging
import socket

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from zonda.scheduler.wakeup import TOPICS

log = logging.getLogger(__name__)
CHANNEL = "zonda_scheduler"


class PostgresWaker:
    """Sends NOTIFY on the metadata DB."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def wake(self, topic: str = "runs") -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_notify(:channel, :topic)"), {"channel": CHANNEL, "topic": topic})
                conn.commit()
        except DBAPIError as exc:
            log.warning("could not notify the scheduler (%s); its poll will pick the change up", exc)


class PostgresListener:
    """The scheduler's end: a LISTENing connection to wait on."""

    def __init__(self, db_url: str) -> None:
        self.conninfo = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
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
