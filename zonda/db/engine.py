"""Engines for the metadata DB: SQLite in WAL mode (embedded default) or PostgreSQL (production)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from zonda.db.dialect import ends_session
from zonda.db.write_lock import lock_path, write_lock
from zonda.errors import ConfigError

WRITE = "zonda_write"

_lock_files: WeakKeyDictionary[Engine, str] = WeakKeyDictionary()
"""The write lock file of each engine on a SQLite file (`write_lock`), worked out once."""


def make_engine(url: str, pool_size: int = 5) -> Engine:
    """An engine for `url`; SQLite gets WAL, synchronous=NORMAL and write transactions that lock early."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"ZONDA_DB_URL {url!r} is not a database URL: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError(
            f"ZONDA_DB_URL uses {parsed.get_backend_name()!r}; Zonda supports sqlite:///PATH and "
            "postgresql+psycopg://USER@HOST/DB"
        )
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    event.listen(engine, "handle_error", _fatal_is_disconnect)
    return engine


def _fatal_is_disconnect(context: ExceptionContext) -> None:
    """Invalidate a connection whose session PostgreSQL ended at once, as SQLAlchemy does for the
    errors it knows to mean so, rather than use it again and fail a second time."""
    if ends_session(context.original_exception):
        context.is_disconnect = True


def unavailable(exc: BaseException) -> str | None:
    """Why the metadata DB cannot serve right now (down, restarting, out of connections, a
    deadlock or a lock wait), or None when `exc` is no such error: one worth retrying, not a bug."""
    if isinstance(exc, PoolTimeout):
        return "no free connection to the metadata DB"
    if not isinstance(exc, DBAPIError):
        return None
    reason = driver_reason(exc)
    if isinstance(exc.orig, sqlite3.Error):
        # SQLite's OperationalError also means a missing table or a corrupt file: only a lock is busy.
        return reason if "locked" in reason or "busy" in reason else None
    if exc.connection_invalidated or isinstance(exc, OperationalError):
        return reason
    return None


def driver_reason(exc: DBAPIError) -> str:
    """The first line of the driver's message (what failed, without SQLAlchemy's statement dump)."""
    lines = str(exc.orig).strip().splitlines()
    return lines[0] if lines else type(exc.orig).__name__


def _sqlite_engine(url: str, database: str | None) -> Engine:
    engine = create_engine(
        url, connect_args={"timeout": 60, "check_same_thread": False}, pool_size=4, max_overflow=8
    )
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        _lock_files[engine] = str(lock_path(Path(database).absolute()))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


@contextmanager
def write_txn(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes. On SQLite it takes the write lock at BEGIN, so it never fails midway,
    after queueing for it on the DB's file lock (`write_lock`)."""
    with engine.connect() as conn, write_txn_on(conn):
        yield conn


@contextmanager
def write_txn_on(conn: Connection) -> Iterator[Connection]:
    """`write_txn` on a connection the caller keeps across transactions (the scheduler's writer):
    no pool checkout, and so no liveness ping, per transaction."""
    lock_file = _lock_files.get(conn.engine)
    with (
        write_lock(lock_file) if lock_file is not None else nullcontext(),
        conn.execution_options(**{WRITE: True}).begin(),
    ):
        yield conn


@contextmanager
def read_txn(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (a consistent snapshot on both databases)."""
    with engine.connect() as conn, conn.begin():
        yield conn
