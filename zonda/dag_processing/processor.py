"""`DagProcessor`: keeps the metadata DB in step with one tenant's DAG folders, a pass every `parse_interval`.

A pass stamps every DAG file (see `scan`), imports the new and changed ones in child processes
(see `runner`), saves each DAG version's source in the code store (see `code_store`), records it
all in one write transaction (see `registry`) and wakes the scheduler if anything changed. DAG ids
are qualified with the tenant (`team-a/etl`), and only the tenant's own DAGs are ever retired.
What was seen is remembered in memory only: a restarted processor parses every file once again,
which creates no new versions for unchanged DAGs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from zonda.core.ids import DEFAULT_TENANT, qualify
from zonda.dag_processing.code_store import store_source, tenant_code_dir, version_hash
from zonda.dag_processing.registry import Recorded, record_pass
from zonda.dag_processing.runner import FileResult, parse_files
from zonda.dag_processing.scan import FileStamp, changed_dag_files, dag_files, scan
from zonda.db.engine import unavailable, write_txn
from zonda.executors.local.tenancy import TenantUsers

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from zonda.scheduler.wakeup import Waker
    from zonda.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TenantFolders:
    """A tenant and the folders its DAG files live in."""

    tenant_id: str
    folders: tuple[Path, ...]


@dataclass(frozen=True)
class ParseReport:
    """What one pass did: files imported, DAG rows written, versions created, files in error, DAGs retired."""

    files_parsed: int = 0
    dags_updated: int = 0
    new_versions: int = 0
    errors: int = 0
    deactivated: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.dags_updated or self.new_versions or self.errors or self.deactivated)


class DagProcessor:
    """Parses a tenant's DAG folders into DAG versions and import errors; it owns that tenant's `dags` rows.

    Without `tenant`, it processes `settings.resolved_dags_folder` for the tenant `default`.
    """

    def __init__(
        self, settings: Settings, engine: Engine, waker: Waker, tenant: TenantFolders | None = None
    ) -> None:
        self._tenant = tenant or TenantFolders(DEFAULT_TENANT, (settings.resolved_dags_folder,))
        self._users = TenantUsers.from_settings(settings)
        self._settings = settings
        self._engine = engine
        self._waker = waker
        self._stamps: dict[str, FileStamp] = {}
        self._present: frozenset[str] | None = None
        self._conflicted: frozenset[str] = frozenset()
        self._missing: frozenset[Path] = frozenset()

    def process_once(self) -> ParseReport:
        """Run one pass over the DAG folder; raises only for failures of Zonda itself (e.g. the DB).

        While a folder is missing (not mounted yet, removed, mistyped), no DAG is retired: a folder
        that is gone for a while must not deactivate every DAG in it. Its files count again once it is back.
        """
        self._note_missing(frozenset(f for f in self._tenant.folders if not f.is_dir()))
        stamps: dict[str, FileStamp] = {}
        for folder in self._tenant.folders:
            stamps.update(scan(folder, self._stamps))
        present = dag_files(stamps)
        todo = changed_dag_files(self._stamps, stamps)
        identity = self._users.identity(self._tenant.tenant_id)
        parsed = parse_files(todo, self._settings.parse_processes, self._settings.parse_timeout, identity)
        results = [self._qualified(r) for r in parsed]
        self._store_code(results)
        reconcile = not self._missing
        recorded = self._record(results, present if reconcile else None)
        self._remember(stamps, present, todo, recorded, reconcile)
        report = ParseReport(
            len(results), recorded.dags_updated, recorded.new_versions, recorded.errors, recorded.deactivated
        )
        if report.changed:
            self._waker.wake("dags")
        return report

    def run_forever(self, stop: threading.Event) -> None:
        """Run a pass every `parse_interval` seconds until `stop` is set; failed passes are logged."""
        interval = self._settings.parse_interval
        folders = ", ".join(str(f) for f in self._tenant.folders)
        log.info(
            "DAG processor of tenant %s watching %s every %gs", self._tenant.tenant_id, folders, interval
        )
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.process_once()
            except Exception as exc:
                log_failed_pass(f"DAG processing pass of tenant {self._tenant.tenant_id}", exc, interval)
            stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def _qualified(self, result: FileResult) -> FileResult:
        """The file's DAGs with ids in the tenant's namespace."""
        specs = tuple(replace(s, dag_id=qualify(self._tenant.tenant_id, s.dag_id)) for s in result.specs)
        return replace(result, specs=specs)

    def _store_code(self, results: Sequence[FileResult]) -> None:
        folder = tenant_code_dir(self._settings.code_dir, self._tenant.tenant_id)
        for result in results:
            for spec in result.specs:
                store_source(folder, version_hash(spec, result.source), result.source)

    def _note_missing(self, missing: frozenset[Path]) -> None:
        """Say once when a folder goes missing, and once when it is back."""
        for folder in sorted(missing - self._missing):
            log.warning(
                "DAG folder %s of tenant %s does not exist (not mounted yet, removed or mistyped?); "
                "its DAGs stay as they are until it is back",
                folder,
                self._tenant.tenant_id,
            )
        for folder in sorted(self._missing - missing):
            log.info("DAG folder %s of tenant %s is back", folder, self._tenant.tenant_id)
        self._missing = missing

    def _record(self, results: Sequence[FileResult], present: frozenset[str] | None) -> Recorded:
        """Write the pass in one transaction; the set of files is reconciled only when it changed
        (never when `present` is None: a folder is missing)."""
        retire = present if present is not None and present != self._present else None
        if not results and retire is None:
            return Recorded()
        with write_txn(self._engine) as conn:
            return record_pass(conn, self._tenant.tenant_id, results, retire, datetime.now(UTC))

    def _remember(
        self,
        stamps: dict[str, FileStamp],
        present: frozenset[str],
        parsed: list[str],
        recorded: Recorded,
        reconciled: bool,
    ) -> None:
        """Keep this pass's stamps, and its set of files if the DB was reconciled with it. Files
        refused for a duplicate DAG id are parsed again after some DAG was deactivated, since the
        id they want may be free now."""
        conflicted = ((self._conflicted - set(parsed)) | recorded.conflicted) & present
        if recorded.deactivated:
            stamps = {path: stamp for path, stamp in stamps.items() if path not in conflicted}
        self._stamps, self._conflicted = stamps, conflicted
        if reconciled:
            self._present = present


def log_failed_pass(what: str, exc: Exception, retry_s: float) -> None:
    """A pass that failed and is retried: one line when the metadata DB is unavailable (an outage
    fails every pass), the traceback otherwise."""
    reason = unavailable(exc)
    if reason is None:
        log.error("%s failed; retrying in %gs", what, retry_s, exc_info=exc)
    else:
        log.warning("%s failed: metadata DB unavailable (%s); retrying in %gs", what, reason, retry_s)
