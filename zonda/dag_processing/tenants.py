"""One DAG processor per tenant, each on its own thread: a slow or broken file delays only its tenant.

Each tenant's files are imported in that tenant's own child processes (`runner`), and its DAG ids
get its name in front (`team-a/etl`). The set of tenants is read from the DB every pass interval,
so a tenant created through the API starts being processed without a restart. On PostgreSQL only
one DAG processor works at a time (`leadership`); others stand by.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from zonda.dag_processing.leadership import Leadership
from zonda.dag_processing.processor import DagProcessor, TenantFolders, log_failed_pass
from zonda.db.engine import read_txn
from zonda.db.tenants import list_tenants

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from zonda.scheduler.wakeup import Waker
    from zonda.settings import Settings


class TenantProcessors:
    """Starts a `DagProcessor` thread for each tenant with DAG folders, and stops those of removed tenants."""

    def __init__(self, settings: Settings, engine: Engine, waker: Waker) -> None:
        self._settings = settings
        self._engine = engine
        self._waker = waker
        self._running: dict[TenantFolders, tuple[threading.Thread, threading.Event]] = {}

    def run_forever(self, stop: threading.Event) -> None:
        """Keep one processor per tenant until `stop` is set, while this is the active DAG processor."""
        leadership = Leadership(self._engine)
        interval = self._settings.parse_interval
        while not stop.is_set():
            try:
                active = leadership.held()
            except Exception as exc:
                log_failed_pass("taking the DAG processor's lock", exc, interval)
                active = False
            try:
                self.reconcile(self._wanted() if active else set())
            except Exception as exc:
                log_failed_pass("reading the tenants", exc, interval)
            stop.wait(interval)
        self.reconcile(set())
        leadership.release()

    def reconcile(self, wanted: set[TenantFolders]) -> None:
        """Start processors for `wanted` tenants not running yet; stop the others (folders changed too)."""
        for tenant in set(self._running) - wanted:
            thread, halt = self._running.pop(tenant)
            halt.set()
            thread.join(timeout=self._settings.parse_timeout + 5)
        for tenant in wanted - set(self._running):
            halt = threading.Event()
            processor = DagProcessor(self._settings, self._engine, self._waker, tenant)
            thread = threading.Thread(
                target=processor.run_forever, args=(halt,), name=f"zonda-dags-{tenant.tenant_id}", daemon=True
            )
            thread.start()
            self._running[tenant] = (thread, halt)

    def _wanted(self) -> set[TenantFolders]:
        with read_txn(self._engine) as conn:
            found = list_tenants(conn)
        return {
            TenantFolders(t.tenant_id, tuple(Path(f) for f in t.dag_folders)) for t in found if t.dag_folders
        }
