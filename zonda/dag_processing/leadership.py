"""One active DAG processor per PostgreSQL metadata DB; any other stands by to take over.

Two processors recording the same files at once race for the same version numbers: the loser's
unique-key error became that file's import error, which stayed until the file changed. So the
active processor holds a session advisory lock on a connection of its own; a standby tries to
take it at every pass interval, and gets it once the active one stops, dies or loses its
connection (PostgreSQL ends the session, which frees the lock). SQLite needs none: its writers
queue on one lock, and each sees what the one before it wrote.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

LOCK_KEY = 7_426_002
"""PostgreSQL advisory lock of the active DAG processor (the migrations use 7_426_001)."""


class Leadership:
    """Whether this process is the active DAG processor, held through a connection kept open."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self._standing_by = False

    def held(self) -> bool:
        """True while this process is the active one: its lock's connection still answers, or
        the lock was free and is now taken. Raises DBAPIError when the DB cannot be reached."""
        if self._engine.dialect.name != "postgresql":
            return True
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql("SELECT 1")
                return True
            except DBAPIError as exc:
                log.warning(
                    "lost the connection that made this the active DAG processor (%s)", type(exc).__name__
                )
                self._drop()
        return self._take()

    def release(self) -> None:
        """Let a standby take over at once (closing the session frees the lock)."""
        self._drop()

    def _take(self) -> bool:
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            taken = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}).scalar())
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not taken:
            conn.close()
            if not self._standing_by:
                log.info(
                    "another DAG processor is active on this metadata DB; this one stands by to take over"
                )
            self._standing_by = True
            return False
        if self._standing_by:
            log.info("this DAG processor is now the active one")
        self._conn, self._standing_by = conn, False
        return True

    def _drop(self) -> None:
        """Close the lock's connection for good: returned to the pool, its session (and lock) would live on."""
        if self._conn is not None:
            self._conn.invalidate()
            self._conn.close()
            self._conn = None
