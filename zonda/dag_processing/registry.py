"""Record the results of one processing pass in the metadata DB.

Order matters: first every DAG that left its file (file deleted, DAG removed) is deactivated, then
the files' DAGs are recorded. So a DAG moved from one file to another in the same pass is simply
taken over by its new file, while a DAG id still defined by another active file is refused with an
import error naming that file. Each file is recorded in its own savepoint: a DB error on one file
becomes that file's import error and the rest of the pass is kept.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from zonda.dag_processing.code_store import version_hash
from zonda.dag_processing.runner import FileResult
from zonda.db.dags import (
    active_owners,
    clear_import_error,
    deactivate_dropped,
    deactivate_missing,
    record_dag_version,
    record_import_error,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    """What recording (a file or a whole pass) changed in the DB."""

    dags_updated: int = 0
    new_versions: int = 0
    errors: int = 0
    deactivated: int = 0
    conflicted: frozenset[str] = frozenset()

    def __add__(self, other: Recorded) -> Recorded:
        return Recorded(
            self.dags_updated + other.dags_updated,
            self.new_versions + other.new_versions,
            self.errors + other.errors,
            self.deactivated + other.deactivated,
            self.conflicted | other.conflicted,
        )


def record_pass(
    conn: Connection,
    tenant: str,
    results: Sequence[FileResult],
    present: frozenset[str] | None,
    now: datetime,
) -> Recorded:
    """Apply the tenant's `results`; with `present` (every DAG file of the tenant) also retire the
    tenant's DAGs whose files are gone."""
    retired = deactivate_missing(conn, tenant, present, now) if present is not None else 0
    total = Recorded(deactivated=retired)
    for result in results:
        if result.error is None:
            kept = {spec.dag_id for spec in result.specs}
            total += Recorded(deactivated=deactivate_dropped(conn, result.fileloc, kept, now))
    for result in results:
        total += _record_file_safely(conn, tenant, result, now)
    return total


def record_file(conn: Connection, tenant: str, result: FileResult, now: datetime) -> Recorded:
    """Store one file's DAG versions and its import error (or clear it)."""
    if result.error is not None:
        record_import_error(conn, tenant, result.fileloc, result.error, now)
        return Recorded(errors=1)
    owners = active_owners(conn, [spec.dag_id for spec in result.specs])
    taken = {d: f for d, f in owners.items() if f != result.fileloc}
    total = Recorded()
    for spec in result.specs:
        if spec.dag_id not in taken:
            done = record_dag_version(conn, spec, result.source, version_hash(spec, result.source), now)
            total += Recorded(dags_updated=int(done.dag_changed), new_versions=int(done.new_version))
    if not taken:
        clear_import_error(conn, result.fileloc)
        return total
    record_import_error(conn, tenant, result.fileloc, conflict_message(taken), now)
    return total + Recorded(errors=1, conflicted=frozenset([result.fileloc]))


def conflict_message(taken: dict[str, str]) -> str:
    lines = [f"DAG id '{dag_id}' is already defined in {where}" for dag_id, where in sorted(taken.items())]
    return "\n".join(lines) + "\nGive each DAG a unique dag_id (or remove the old definition)."


def _record_file_safely(conn: Connection, tenant: str, result: FileResult, now: datetime) -> Recorded:
    try:
        with conn.begin_nested():
            return record_file(conn, tenant, result, now)
    except SQLAlchemyError:
        log.exception("could not store the DAGs of %s", result.fileloc)
        error = f"Zonda could not store the DAGs of this file:\n{traceback.format_exc()}"
        record_import_error(conn, tenant, result.fileloc, error, now)
        return Recorded(errors=1)
