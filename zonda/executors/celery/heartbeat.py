"""Worker heartbeats: the worker's main process tells every scheduler it is alive and what it runs.

A daemon thread publishes a `WorkerHeartbeat` every `interval` seconds on its own broker
connection (kept open, reconnected after an error). The running attempts come from Celery's
record of the requests its pool has accepted. Schedulers use the beats to find attempts whose
worker died (`tracker.py`) and record them for `zonda workers list`.
"""

from __future__ import annotations

import logging
import socket
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from celery.worker import state

from zonda.executors.celery.app import TASK_NAME
from zonda.executors.celery.codec import ProtocolError, decode_request
from zonda.executors.celery.events import RunningTask, WorkerHeartbeat, publish_heartbeat, running_task

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)


class HeartbeatSender:
    """Publishes this worker's heartbeat every `interval` seconds until `stop()`."""

    def __init__(
        self, app: Celery, worker_id: str, queues: list[str], concurrency: int, interval: float
    ) -> None:
        self.app = app
        self.worker_id = worker_id
        self.queues = tuple(queues)
        self.concurrency = concurrency
        self.interval = interval
        self.started_at = datetime.now(UTC)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zonda-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def beat(self) -> WorkerHeartbeat:
        """The heartbeat to send now."""
        return WorkerHeartbeat(
            worker_id=self.worker_id,
            hostname=socket.gethostname(),
            queues=self.queues,
            concurrency=self.concurrency,
            running=tuple(running_tasks()),
            started_at=self.started_at,
            sent_at=datetime.now(UTC),
        )

    def _run(self) -> None:
        connection: Any = None
        while not self._stop.is_set():
            try:
                if connection is None:
                    connection = self.app.connection_for_write()
                publish_heartbeat(connection.Producer(), self.beat())
            except Exception as exc:  # the broker is down: try again at the next beat
                log.warning("heartbeat not sent (%s); retrying in %.1f s", exc, self.interval)
                if connection is not None:
                    connection.release()
                connection = None
            self._stop.wait(self.interval)
        if connection is not None:
            connection.release()


def running_tasks() -> list[RunningTask]:
    """The attempts this worker's pool runs now (Celery's active requests of `zonda.run_task`)."""
    for _ in range(3):
        try:
            requests = list(state.active_requests)
            break
        except RuntimeError:  # the set changed while it was copied (another thread); copy again
            continue
    else:
        return []
    running: list[RunningTask] = []
    for request in requests:
        if request.name != TASK_NAME or not request.args:
            continue
        try:
            running.append(running_task(decode_request(request.args[0])))
        except ProtocolError:
            continue
    return running
