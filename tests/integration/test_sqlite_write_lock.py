"""SQLite writers of all Zonda processes queue on the DB's file lock, never in SQLite's busy handler.

Each test sets SQLite's busy timeout to 0 on its connections, so a write transaction that met
another's write lock would fail at once with "database is locked" instead of sleeping in the
busy handler. With the file lock no writer of Zonda's ever meets SQLite's lock.
"""

from __future__ import annotations

import multiprocessing
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from zonda.db.engine import make_engine, read_txn, write_txn
from zonda.db.write_lock import lock_path, write_lock

WRITES = 150


def _engine(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _no_busy_wait(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=0")

    return engine


def _write(path: Path, writer: str, ready: Any = None) -> None:
    """`WRITES` write transactions, each reading the counter and writing it back one higher;
    `ready` (an event) is set just before the first."""
    engine = _engine(path)
    if ready is not None:
        ready.set()
    for _ in range(WRITES):
        with write_txn(engine) as conn:
            value = conn.execute(text("SELECT n FROM counter")).scalar_one()
            conn.execute(text("UPDATE counter SET n = :n"), {"n": value + 1})
            conn.execute(text("INSERT INTO writes (writer) VALUES (:w)"), {"w": writer})
    engine.dispose()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "zonda.db"
    engine = _engine(path)
    with write_txn(engine) as conn:
        conn.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO counter VALUES (0)"))
        conn.execute(text("CREATE TABLE writes (writer TEXT NOT NULL)"))
    engine.dispose()
    return path


def _count(path: Path) -> tuple[int, dict[str, int]]:
    engine = _engine(path)
    with read_txn(engine) as conn:
        counter = conn.execute(text("SELECT n FROM counter")).scalar_one()
        rows = conn.execute(text("SELECT writer, count(*) FROM writes GROUP BY writer")).all()
    engine.dispose()
    return counter, {writer: n for writer, n in rows}


@pytest.mark.parametrize("start_method", ["spawn", "fork"])
def test_writers_in_several_processes_and_threads_take_turns_without_meeting_sqlites_lock(
    db: Path, start_method: str
) -> None:
    context = multiprocessing.get_context(start_method)
    processes = [context.Process(target=_write, args=(db, f"process-{i}")) for i in range(2)]
    threads = [threading.Thread(target=_write, args=(db, f"thread-{i}")) for i in range(2)]
    for worker in [*processes, *threads]:
        worker.start()
    for thread in threads:
        thread.join()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0, "a writer process failed (see its traceback above)"

    counter, by_writer = _count(db)
    assert by_writer == {name: WRITES for name in ("process-0", "process-1", "thread-0", "thread-1")}
    assert counter == 4 * WRITES  # no lost update: each read-modify-write ran alone
    assert stat.S_IMODE(lock_path(db).stat().st_mode) == 0o600  # only the server's user may hold it


def test_a_writer_waits_for_another_process_holding_the_lock_and_goes_on_when_it_lets_go(
    db: Path,
) -> None:
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    engine = _engine(db)
    with write_txn(engine) as conn:
        conn.execute(text("UPDATE counter SET n = 100"))
        other = context.Process(target=_write, args=(db, "other", ready))
        other.start()
        assert ready.wait(60), "the other process did not start"
        other.join(0.5)
        assert other.is_alive(), "the other process wrote, or failed, while this one held the write lock"
    other.join(120)
    assert other.exitcode == 0
    assert _count(db) == (100 + WRITES, {"other": WRITES})
    engine.dispose()


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def test_a_child_forked_while_the_lock_is_held_does_not_keep_it_after_its_parent_lets_go(db: Path) -> None:
    context = multiprocessing.get_context("fork")
    with write_lock(str(lock_path(db))):
        child = context.Process(target=_sleep, args=(30.0,))  # inherits the lock file's descriptor
        child.start()
    try:
        writer = multiprocessing.get_context("spawn").Process(target=_write, args=(db, "after"))
        writer.start()
        writer.join(60)
        assert writer.exitcode == 0, "a writer could not take the lock while the forked child lived"
        assert child.is_alive()
    finally:
        child.kill()
        child.join()
    assert _count(db) == (WRITES, {"after": WRITES})
