"""Zonda in the test process: tenants, real schedulers (threads) with real local worker processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from tests.waiting import wait_until
from zonda.api.schemas import RunRecord, TriggerRequest
from zonda.clock import utc_now
from zonda.core.states import RunState
from zonda.dag_processing.processor import DagProcessor, TenantFolders
from zonda.db.engine import make_engine, write_txn
from zonda.db.tenants import create_tenant
from zonda.executors.registry import make_executor
from zonda.scheduler.loop import Scheduler
from zonda.scheduler.ownership import new_scheduler_id
from zonda.scheduler.wakeup import NullWaker, make_listener, make_waker
from zonda.services import runs
from zonda.services.context import Services
from zonda.settings import Settings


@dataclass
class Zonda:
    """Tenants with their DAG files, and schedulers with local worker processes over one metadata DB."""

    engine: Engine
    settings: Settings
    svc: Services
    root: Path
    stops: list[tuple[threading.Thread, threading.Event]] = field(default_factory=list)

    def tenant(self, tenant: str, source: str, **quota: int) -> None:
        folder = self.root / tenant
        folder.mkdir()
        (folder / "dags.py").write_text(source)
        fields = {"display_name": tenant, "dag_folders": [str(folder)], **quota}
        with write_txn(self.engine) as conn:
            create_tenant(conn, tenant, fields, datetime.now(UTC))
        DagProcessor(self.settings, self.engine, NullWaker(), TenantFolders(tenant, (folder,))).process_once()

    def start_scheduler(
        self, workers: int, listen: bool = True, clock: Callable[[], datetime] = utc_now
    ) -> str:
        """A scheduler on a thread, with `workers` local workers; `clock`: its machine's clock. Returns its id."""
        settings = self.settings.model_copy(update={"workers": workers})
        scheduler_id = f"{new_scheduler_id()}-{len(self.stops)}"
        listener = make_listener(settings, self.engine) if listen else None
        executor = make_executor(settings, scheduler_id)
        scheduler = Scheduler(
            settings, self.engine, executor, listener, clock=clock, scheduler_id=scheduler_id
        )
        stop = threading.Event()
        thread = threading.Thread(target=scheduler.serve, args=(stop,), daemon=True)
        thread.start()
        self.stops.append((thread, stop))
        return scheduler_id

    def trigger(self, dag_id: str) -> str:
        return runs.trigger_run(self.svc, dag_id, TriggerRequest()).run_id

    def wait(self, run_ids: list[str], timeout: float = 60) -> list[RunRecord]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = [runs.get_run(self.svc, r) for r in run_ids]
            if all(RunState(r.state).finished for r in records):
                assert [r.state for r in records] == ["success"] * len(records), [
                    (t.task_id, t.error) for r in records for t in r.tasks if t.error
                ]
                return records
            time.sleep(0.05)
        raise AssertionError(f"runs {run_ids} did not finish within {timeout} s")

    @staticmethod
    def wait_until(check: Callable[[], bool], timeout: float = 30) -> None:
        wait_until(check, timeout, "the condition")

    def stop(self) -> None:
        for _, stop in self.stops:
            stop.set()
        for thread, _ in self.stops:
            thread.join(30)


@contextmanager
def in_process_zonda(db_url: str, tmp_path: Path, **settings_fields: Any) -> Iterator[Zonda]:
    """A `Zonda` on `db_url`; its schedulers are stopped on exit."""
    settings = Settings(home=tmp_path / "home", db_url=db_url, safety_poll_interval=0.5, **settings_fields)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(db_url)
    z = Zonda(
        engine,
        settings,
        Services(engine=engine, settings=settings, waker=make_waker(settings, engine)),
        tmp_path,
    )
    try:
        yield z
    finally:
        z.stop()
        engine.dispose()
