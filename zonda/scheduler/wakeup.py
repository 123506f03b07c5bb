"""Wake the scheduler at once when something happens elsewhere (a run triggered, a DAG parsed).

On SQLite a datagram on a Unix socket under ZONDA_HOME; on PostgreSQL a NOTIFY (pg_wakeup.py),
which reaches schedulers on other machines. The scheduler waits on it beside the worker pipes.
A lost wake-up costs only latency: the safety-net poll finds the work anyway.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from zonda.settings import Settings

log = logging.getLogger(__name__)


TOPICS = frozenset({"runs", "commands", "dags", "pools", "tenants", "secrets"})
"""What changed: new runs, run commands (clear...), DAGs or schedules, pools, tenants (quotas), secrets."""


class Waker(Protocol):
    """Tells the scheduler to look at one part of the DB now."""

    def wake(self, topic: str = "runs") -> None: ...


class SocketWaker:
    """Sends a wake-up datagram to the scheduler's socket."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def wake(self, topic: str = "runs") -> None:
        try:
            self._sock.sendto(topic.encode(), self.path)
        except (FileNotFoundError, ConnectionRefusedError, BlockingIOError) as exc:
            log.debug("scheduler not listening on %s (%s); its poll will pick the change up", self.path, exc)


class NullWaker:
    """For processes with no scheduler to wake (e.g. tests of the API alone)."""

    def wake(self, topic: str = "runs") -> None:
        return None


class Listener(Protocol):
    """What the scheduler waits on for wake-ups."""

    def fileno(self) -> int: ...

    def drain(self) -> set[str]: ...

    def check(self) -> bool: ...

    def close(self) -> None: ...


class WakeupListener:
    """The scheduler's end: a socket to wait on, drained after each wake-up."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.setblocking(False)
        self.path = path

    def fileno(self) -> int:
        return self._sock.fileno()

    def drain(self) -> set[str]:
        """The topics of every wake-up received since the last call."""
        topics: set[str] = set()
        while True:
            try:
                topics.add(self._sock.recv(64).decode(errors="replace"))
            except BlockingIOError:
                return topics & TOPICS

    def check(self) -> bool:
        return True

    def close(self) -> None:
        self._sock.close()
        self.path.unlink(missing_ok=True)


def socket_path(run_dir: Path) -> Path:
    return run_dir / "scheduler.sock"


def make_waker(settings: Settings, engine: Engine) -> Waker:
    """NOTIFY on PostgreSQL (reaches schedulers on any machine); a local socket on SQLite."""
    if engine.dialect.name == "postgresql":
        from zonda.scheduler.pg_wakeup import PostgresWaker

        return PostgresWaker(engine)
    return SocketWaker(socket_path(settings.run_dir))


def make_listener(settings: Settings, engine: Engine) -> Listener:
    """The scheduler's side of `make_waker`."""
    if engine.dialect.name == "postgresql":
        from zonda.scheduler.pg_wakeup import PostgresListener

        return PostgresListener(settings.resolved_db_url)
    return WakeupListener(socket_path(settings.run_dir))
