"""Entry points of the processes `zonda up` starts; each stops cleanly on SIGTERM or SIGINT."""

from __future__ import annotations

import logging

from zonda.db.engine import make_engine
from zonda.executors.local.worker_main import die_with_parent
from zonda.executors.registry import make_executor
from zonda.scheduler.loop import Scheduler
from zonda.scheduler.ownership import new_scheduler_id
from zonda.scheduler.wakeup import make_listener, make_waker
from zonda.settings import Settings
from zonda.stopping import on_stop_signals


def configure_logging(settings: Settings, name: str) -> None:
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(settings.logs_dir / f"{name}.log"), logging.StreamHandler()],
    )


def run_scheduler(settings: Settings, parent_pid: int | None = None) -> None:
    """The scheduler process; with the local executor its workers are its children."""
    if parent_pid is not None:
        die_with_parent(parent_pid)
    stop = on_stop_signals().stop
    configure_logging(settings, "scheduler")
    engine = make_engine(settings.resolved_db_url)
    scheduler_id = new_scheduler_id()
    executor = make_executor(settings, scheduler_id)
    listener = make_listener(settings, engine)
    Scheduler(settings, engine, executor, listener, scheduler_id=scheduler_id).serve(stop)


def run_dag_processor(settings: Settings, parent_pid: int | None = None) -> None:
    """The DAG processor: imports each tenant's DAG files in child processes and records versions."""
    from zonda.dag_processing.tenants import TenantProcessors

    if parent_pid is not None:
        die_with_parent(parent_pid)
    stop = on_stop_signals().stop
    configure_logging(settings, "dag-processor")
    engine = make_engine(settings.resolved_db_url)
    TenantProcessors(settings, engine, make_waker(settings, engine)).run_forever(stop)


def run_api(settings: Settings, parent_pid: int | None = None) -> None:
    """The HTTP API (and, later, the web UI)."""
    import uvicorn

    from zonda.api.app import create_app

    if parent_pid is not None:
        die_with_parent(parent_pid)
    configure_logging(settings, "api")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")
