"""The scheduler's writer thread: commits batches so that DB round trips never stall the loop.

One batch is in flight at a time; changes made meanwhile wait for the next one, so batches grow
when the DB is slow (group commit). A batch that fails because the DB is unreachable is retried
until it commits, on a new connection; batches are idempotent, so an unconfirmed commit is safe to
repeat. The writer keeps its connection between batches: a pool checkout pings the DB first, one
more round trip on the path of every task's dispatch. A kept connection the DB ended while it sat
idle is replaced at once, as a ping would have found it. On PostgreSQL a batch is sent at once,
lease renewal included, and only checked before its commit (`_write_at_once`, ADR 0005).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from zonda.clock import utc_now
from zonda.db import leases
from zonda.db.commands import mark_done
from zonda.db.dialect import pipelined
from zonda.db.engine import driver_reason, write_txn_on
from zonda.scheduler.persistence import Rows, send_at_once, write
from zonda.worker.protocol import TaskRequest

log = logging.getLogger(__name__)
RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class Lease:
    """The scheduler writing, the runs whose leases to extend (and to fence the batch's writes by),
    and until when."""

    owner: str
    run_ids: list[str]
    until: datetime


@dataclass
class Batch:
    """Rows to write, under the writer's lease, plus what the loop does once they are committed.

    Rows of runs whose lease another scheduler took are not written (fencing): they come back in
    `lost_runs` for the loop to drop. `commands` (id, run id) are users' commands whose effects
    the rows hold: marked done in the same transaction, so a done command's effect is visible.
    """

    rows: Rows
    epoch: int
    finished_runs: list[str] = field(default_factory=list)
    extra: Callable[[Connection], None] | None = None
    lease: Lease | None = None
    requests: list[TaskRequest] = field(default_factory=list)
    commands: list[tuple[int, str]] = field(default_factory=list)
    lost_runs: set[str] = field(default_factory=set)


class Writer:
    """Commits one `Batch` at a time on a daemon thread and wakes the loop after each commit."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._todo: queue.Queue[Batch | None] = queue.Queue()
        self._done: queue.Queue[Batch] = queue.Queue()
        self._in_flight = 0
        self.pending_requests = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._give_up = threading.Event()
        self._conn: Connection | None = None
        self._thread = threading.Thread(target=self._run, name="zonda-scheduler-writer", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._in_flight > 0

    def fileno(self) -> int:
        """Readable when a batch was committed (for `multiprocessing.connection.wait`)."""
        return self._wake_r.fileno()

    def submit(self, batch: Batch) -> None:
        self._in_flight += 1
        self.pending_requests += len(batch.requests)
        self._todo.put(batch)

    def committed(self) -> list[Batch]:
        """Batches committed since the last call (drains the wake-up socket)."""
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        done: list[Batch] = []
        while not self._done.empty():
            done.append(self._done.get_nowait())
        self._in_flight -= len(done)
        self.pending_requests -= sum(len(b.requests) for b in done)
        return done

    def wait_idle(self, timeout: float | None = None) -> list[Batch]:
        """Block until every submitted batch is committed, or `timeout` seconds passed (the DB does
        not answer; `busy` then stays true); returns the batches committed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        done: list[Batch] = []
        while self.busy:
            try:
                batch = self._done.get(
                    timeout=None if deadline is None else max(0.0, deadline - time.monotonic())
                )
            except queue.Empty:
                break
            done.append(batch)
            self._in_flight -= 1
            self.pending_requests -= len(batch.requests)
        return done + self.committed()

    def stop(self) -> None:
        """End the thread; a batch it is still retrying (the DB does not answer) is given up, not committed."""
        self._give_up.set()
        self._todo.put(None)
        self._thread.join(timeout=30)
        self._wake_r.close()
        self._wake_w.close()

    def _run(self) -> None:
        try:
            while (batch := self._todo.get()) is not None:
                if self._commit(batch):
                    self._done.put(batch)
                    self._wake_w.send(b"!")
        finally:
            self._drop_connection()

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def _drop_connection(self) -> None:
        """Close the kept connection (after a failure: the next attempt starts on a fresh one)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.invalidate()
            conn.close()

    def _commit(self, batch: Batch) -> bool:
        """Commit the batch, retrying while the DB is unreachable; False if `stop` gave it up meanwhile."""
        failures = 0
        at_once = True
        while True:
            kept = self._conn is not None
            try:
                with write_txn_on(self._connection()) as conn:
                    if at_once and conn.dialect.name == "postgresql":
                        _write_at_once(conn, batch)
                    else:
                        _write(conn, batch)
                    applied = [i for i, run_id in batch.commands if run_id not in batch.lost_runs]
                    mark_done(conn, applied, utc_now())
                    if batch.extra is not None:
                        batch.extra(conn)
                return True
            except _NotAsSent:
                at_once = False
            except DBAPIError as exc:
                self._drop_connection()
                if kept and exc.connection_invalidated:
                    # The DB ended the kept connection while it was idle (a restart, a failover):
                    # what a pool's liveness ping would have found; try a fresh one at once.
                    log.info("the DB closed the writer's connection (%s); reconnecting", driver_reason(exc))
                    continue
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                failures += 1
                log.warning("writing a batch failed (%s); retrying in %.1f s", exc.__class__.__name__, delay)
                if self._give_up.wait(delay):
                    return False


class _NotAsSent(Exception):
    """A batch written at once met a run whose lease another scheduler took, or an attempt already
    stored (the batch is a repeat): rolled back, it is written again with `_write`."""


def _write_at_once(conn: Connection, batch: Batch) -> None:
    """The batch with its lease renewal in one round trip to PostgreSQL, assuming every lease still
    held and every attempt new, as they are but after a takeover or a repeated batch (`_NotAsSent`)."""
    lease = batch.lease
    with pipelined(conn):
        renewed = (
            leases.renew_sent(conn, lease.owner, lease.run_ids, lease.until) if lease is not None else None
        )
        attempts = send_at_once(conn, batch.rows)
    held = {r[0] for r in renewed.rows()} if renewed is not None else set()
    new = len(attempts.rows()) if attempts is not None else 0
    if held != set(lease.run_ids if lease is not None else ()) or new != len(batch.rows.attempts):
        raise _NotAsSent
    batch.lost_runs = set()


def _write(conn: Connection, batch: Batch) -> None:
    """The batch, its leases renewed first: the rows of runs whose lease another scheduler took are
    not written (fencing), and come back in `lost_runs`."""
    rows = batch.rows
    if batch.lease is not None:
        lease = batch.lease
        held = leases.renew(conn, lease.owner, lease.run_ids, lease.until)
        batch.lost_runs = set(lease.run_ids) - held
        rows = rows.only(held) if batch.lost_runs else rows
    write(conn, rows)
