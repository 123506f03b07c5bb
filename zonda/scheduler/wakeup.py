"""Wake the scheduler at once when something happens elsewhere (a run triggered, a DAG parsed).

Locally a datagram on a Unix socket under ZONDA_HOME; the scheduler waits on it beside the
worker pipes. A lost wake-up costs only latency: the safety-net poll finds the work anyway.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class Waker(Protocol):
    """Tells the scheduler to look at the DB now."""

    def wake(self) -> None: ...


class SocketWaker:
    """Sends a wake-up datagram to the scheduler's socket."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def wake(self) -> None:
        try:
            self._sock.sendto(b"!", self.path)
        except (FileNotFoundError, ConnectionRefusedError, BlockingIOError) as exc:
            log.debug("scheduler not listening on %s (%s); its poll will pick the change up", self.path, exc)


class NullWaker:
    """For processes with no scheduler to wake (e.g. tests of the API alone)."""

    def wake(self) -> None:
        return None


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

    def drain(self) -> int:
        count = 0
        while True:
            try:
                self._sock.recv(64)
            except BlockingIOError:
                return count
            count += 1

    def close(self) -> None:
        self._sock.close()
        self.path.unlink(missing_ok=True)


def socket_path(run_dir: Path) -> Path:
    return run_dir / "scheduler.sock"
