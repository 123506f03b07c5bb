"""`zonda worker`: a Celery worker (prefork pool) that runs Zonda tasks and heartbeats to the schedulers.

The worker gets the broker and artifact store from its settings (`ZONDA_BROKER_URL`,
`ZONDA_ARTIFACT_URL`), never the metadata DB. Pool processes live across tasks and keep their
DAG module cache. Celery's mingle and gossip are off: Zonda workers do not need to know each
other, and a worker that starts faster takes work sooner.
"""

from __future__ import annotations

import os
import socket

from celery.signals import worker_ready, worker_shutdown
from celery.utils.nodenames import default_nodename, host_format

from zonda.executors.celery.app import make_app
from zonda.executors.celery.heartbeat import HeartbeatSender
from zonda.executors.celery.task import ChildRuntime, register_task, watch_pool_processes
from zonda.settings import Settings


def worker_id(name: str | None = None) -> str:
    """The worker's id, as Celery names its node: `name@host` (default `zonda-PID@host`, unique per machine)."""
    return str(host_format(default_nodename(name or f"zonda-{os.getpid()}@{socket.gethostname()}")))


def run_worker(
    settings: Settings,
    queues: list[str],
    concurrency: int | None = None,
    name: str | None = None,
    loglevel: str = "INFO",
    tenant: str | None = None,
) -> int:
    """Serve tasks from `queues` until stopped (SIGTERM: finish running tasks first); returns the exit code.

    With `tenant`, only that tenant's tasks run; any other is reported failed without running.
    """
    app = make_app(settings)
    register_task(app, ChildRuntime(app, settings), tenant)
    node = worker_id(name)
    concurrency = concurrency or os.cpu_count() or 1
    heartbeat = HeartbeatSender(app, node, queues, concurrency, settings.heartbeat_interval)
    watch_pool_processes(app, node)
    worker_ready.connect(lambda **_: heartbeat.start(), weak=False)
    worker_shutdown.connect(lambda **_: heartbeat.stop(), weak=False)
    worker = app.Worker(
        hostname=node,
        queues=queues,
        concurrency=concurrency,
        pool_cls="prefork",
        loglevel=loglevel,
        without_mingle=True,
        without_gossip=True,
    )
    worker.start()
    return int(worker.exitcode or 0)
