"""`zonda worker`: serve Zonda tasks from Celery queues, with one slot process per unit of concurrency.

The worker gets the broker and artifact store from its settings (`ZONDA_BROKER_URL`,
`ZONDA_ARTIFACT_URL`), never the metadata DB. Its supervisor (`supervisor.py`) starts the slot
processes (`slot.py`), each a Celery worker of its own; they live across tasks and keep their DAG
module cache. Celery's mingle and gossip are off: Zonda workers do not need to know each other,
and a worker that starts faster takes work sooner.
"""

from __future__ import annotations

import logging
import os
import socket

from celery.utils.nodenames import default_nodename, host_format

from zonda.errors import ConfigError
from zonda.executors.celery.cpus import usable_cpus
from zonda.executors.celery.supervisor import WorkerSupervisor
from zonda.executors.local.tenancy import server_only
from zonda.settings import Settings

LOG_FORMAT = "[%(asctime)s: %(levelname)s/supervisor] %(message)s"


def worker_id(name: str | None = None) -> str:
    """The worker's id, as Celery names its node: `name@host` (default `zonda-PID@host`, unique per machine)."""
    return str(host_format(default_nodename(name or f"zonda-{os.getpid()}@{socket.gethostname()}")))


def refuse_server_credentials() -> None:
    """ConfigError if this worker's environment holds a server credential (the DB URL, the secret
    keys, ...): task code runs in the worker's processes and could read it, even after the worker
    dropped it (a process's initial environment stays readable in /proc). Workers get what a task
    needs in its message."""
    held = sorted(name for name in os.environ if server_only(name) and name != "ZONDA_BROKER_URL")
    if held:
        raise ConfigError(
            f"zonda worker does not start with {', '.join(held)} in its environment: the tasks it runs "
            "could read them. Remove them from the worker's environment (a worker needs ZONDA_BROKER_URL "
            "and the stores, never the metadata DB or the server's keys)"
        )


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
    refuse_server_credentials()
    logging.basicConfig(level=loglevel, format=LOG_FORMAT)
    supervisor = WorkerSupervisor(
        settings, worker_id(name), queues, concurrency or usable_cpus(), loglevel, tenant
    )
    return supervisor.run()
