"""Worker heartbeats: the worker's main process tells every scheduler it is alive and what it runs.

A daemon thread of the worker's supervisor publishes a `WorkerHeartbeat`, sealed with the worker's
keys, every `interval` seconds on its own broker connection (kept open, reconnected after an
error). The running attempts are those its slot processes said they run (`slots.py`). Schedulers
use the beats to find attempts whose worker died (`tracker.py`) and record them for `zonda workers
list`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from zonda.executors.celery.events import RunningTask, WorkerHeartbeat, publish_heartbeat
from zonda.executors.celery.sealing import WorkerKeys

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

SOON = 0.05
"""Seconds a heartbeat asked for `soon` waits for other changes to send with it."""

SOON_GAP = 0.25
"""Heartbeats asked for `soon` come no closer together than this: a worker whose slots hand their
places over hundreds of times a second sends 4 a second, not 20, to every scheduler."""


class HeartbeatSender:
    """Publishes this worker's heartbeat every `interval` seconds until `stop()`."""

    def __init__(
        self,
        app: Celery,
        worker_id: str,
        queues: list[str],
        concurrency: int,
        interval: float,
        running: Callable[[], Sequence[RunningTask]],
        keys: WorkerKeys,
        cpus: int | None = None,
        resting: Callable[[], int] = lambda: 0,
    ) -> None:
        self.app = app
        self.keys = keys
        self.running = running
        self.resting = resting
        self.worker_id = worker_id
        self.queues = tuple(queues)
        self.concurrency = concurrency
        self.cpus = cpus
        self.interval = interval
        self.started_at = datetime.now(UTC)
        self._stop = threading.Event()
        self._soon = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zonda-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def soon(self) -> None:
        """Send the next heartbeat in `SOON` seconds at most (more slots take tasks: schedulers
        publish by the slots a worker's heartbeat says take them)."""
        self._soon.set()

    def stop(self) -> None:
        self._stop.set()
        self._soon.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def beat(self) -> WorkerHeartbeat:
        """The heartbeat to send now."""
        return WorkerHeartbeat(
            worker_id=self.worker_id,
            hostname=socket.gethostname(),
            queues=self.queues,
            concurrency=self.concurrency,
            running=tuple(self.running()),
            started_at=self.started_at,
            sent_at=datetime.now(UTC),
            cpus=self.cpus,
            resting=self.resting(),
        )

    def _run(self) -> None:
        connection: Any = None
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                if connection is None:
                    connection = self.app.connection_for_write()
                publish_heartbeat(connection.Producer(), self.beat(), self.keys)
            except Exception as exc:  # the broker is down: try again at the next beat
                log.warning("heartbeat not sent (%s); retrying in %.1f s", exc, self.interval)
                if connection is not None:
                    connection.release()
                connection = None
            self._soon.wait(self.interval)
            if self._soon.is_set() and not self._stop.is_set():
                self._stop.wait(max(SOON, sent + SOON_GAP - time.monotonic()))
                self._soon.clear()
        if connection is not None:
            connection.release()
