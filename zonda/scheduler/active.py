"""The runs a scheduler holds in memory, with the DAG version each one is pinned to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection

from zonda.core.ids import tenant_of
from zonda.core.run_graph import RunGraph
from zonda.dag_processing.code_store import stored_code
from zonda.db.dags import get_version
from zonda.errors import NotFoundError
from zonda.scheduler.inherited import Inherited
from zonda.scheduler.requests import RunInfo, VersionInfo


@dataclass
class ActiveRun:
    """One run the scheduler owns: its graph, pinned version, tenant and place in the dispatch order."""

    graph: RunGraph
    version: VersionInfo
    info: RunInfo
    seq: int
    started_at: datetime | None = None
    start_recorded: bool = field(default=False)
    fresh_until: datetime | None = None
    """Until when a request may be published before its queued state is stored: half a lease after
    the last committed renewal of this run's lease (ADR 0005)."""
    inherited: Inherited | None = None
    """Attempts the scheduler this run was taken from may have published without storing."""
    tenant: str = field(init=False)

    def __post_init__(self) -> None:
        self.tenant = tenant_of(self.version.dag_id)

    @property
    def run_id(self) -> str:
        return self.graph.run_id

    @property
    def dag_id(self) -> str:
        return self.version.dag_id


class Versions:
    """DAG versions by (dag_id, version), loaded once each (versions never change)."""

    def __init__(self, code_dir: Path) -> None:
        self.code_dir = code_dir
        self._cache: dict[tuple[str, int], VersionInfo] = {}

    def get(self, conn: Connection, dag_id: str, version: int) -> VersionInfo:
        key = (dag_id, version)
        if key not in self._cache:
            row = get_version(conn, dag_id, version)
            if row is None:
                raise NotFoundError(f"version {version} of DAG '{dag_id}' is missing from the metadata DB")
            code_uri = str(stored_code(self.code_dir, tenant_of(dag_id), row.hash))
            self._cache[key] = VersionInfo(dag_id, version, code_uri, row.hash, row.fileloc, row.spec)
        return self._cache[key]
