"""Entry points of the processes `zonda up` starts; each stops cleanly on SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

from zonda.db.engine import make_engine
from zonda.executors.local.pool import LocalExecutor
from zonda.executors.local.worker_main import die_with_parent
from zonda.scheduler.loop import Scheduler
from zonda.scheduler.wakeup import SocketWaker, WakeupListener, socket_path
from zonda.settings import Settings

SECRET_PREFIX = "ZONDA_SECRET_"


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = threading.Event()

    def _handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    return stop


def server_secrets() -> dict[str, str]:
    """Secrets given to tasks: the server's ZONDA_SECRET_<NAME> variables, by NAME."""
    return {k.removeprefix(SECRET_PREFIX): v for k, v in os.environ.items() if k.startswith(SECRET_PREFIX)}


def configure_logging(settings: Settings, name: str) -> None:
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(settings.logs_dir / f"{name}.log"), logging.StreamHandler()],
    )


def run_scheduler(settings: Settings, parent_pid: int) -> None:
    """The scheduler process; its local workers are its children."""
    die_with_parent(parent_pid)
    stop = stop_on_signals()
    configure_logging(settings, "scheduler")
    engine = make_engine(settings.resolved_db_url)
    executor = LocalExecutor(
        settings.workers,
        settings.resolved_artifact_url,
        settings.inline_output_bytes,
        settings.run_dir / "journal",
    )
    listener = WakeupListener(socket_path(settings.run_dir))
    Scheduler(settings, engine, executor, listener, server_secrets()).serve(stop)


def run_dag_processor(settings: Settings, parent_pid: int) -> None:
    from zonda.dag_processing.processor import DagProcessor

    die_with_parent(parent_pid)
    stop = stop_on_signals()
    configure_logging(settings, "dag-processor")
    engine = make_engine(settings.resolved_db_url)
    DagProcessor(settings, engine, SocketWaker(socket_path(settings.run_dir))).run_forever(stop)


def run_api(settings: Settings, parent_pid: int) -> None:
    import uvicorn

    from zonda.api.app import create_app

    die_with_parent(parent_pid)
    configure_logging(settings, "api")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")
