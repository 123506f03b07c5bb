"""DAGs, their versions and import errors: the data functions behind the DAG processor, scheduler and API.

Every function takes an open `Connection` (the caller owns the transaction) and returns frozen rows.
`dags` holds one row per DAG id pointing at its latest version; `dag_versions` keeps every version
(spec JSON + source) forever, because runs pin a version.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, func, insert, select, update

from zonda.core.ids import tenant_of
from zonda.core.spec import DagSpec
from zonda.db.dialect import upsert
from zonda.db.schema import dag_versions, dags, import_errors


@dataclass(frozen=True)
class DagRow:
    """A DAG as the server knows it: where it is defined, its latest version and its switches."""

    dag_id: str
    tenant_id: str
    fileloc: str
    latest_version: int
    paused: bool
    active: bool
    owner: str
    description: str
    tags: list[str]
    schedule: str | None
    timezone: str
    next_fire_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class VersionRow:
    """One version of a DAG: its spec and the exact source it was parsed from."""

    dag_id: str
    version: int
    hash: str
    spec: DagSpec
    source: str
    fileloc: str
    created_at: datetime


@dataclass(frozen=True)
class ImportErrorRow:
    """Why a DAG file could not be loaded (a traceback or a message saying what to fix)."""

    tenant_id: str
    fileloc: str
    error: str
    recorded_at: datetime


@dataclass(frozen=True)
class RecordedVersion:
    """What `record_dag_version` did: the DAG's latest version now, and whether anything changed."""

    version: int
    new_version: bool
    dag_changed: bool


# Reads ---------------------------------------------------------------------------------------------


def list_dags(
    conn: Connection, *, include_inactive: bool = False, tenants: frozenset[str] | None = None
) -> list[DagRow]:
    """Every DAG (of `tenants`, if given) ordered by id; DAGs whose file or definition is gone only
    with `include_inactive`."""
    query = select(dags).order_by(dags.c.dag_id)
    if tenants is not None:
        query = query.where(dags.c.tenant_id.in_(sorted(tenants)))
    if not include_inactive:
        query = query.where(dags.c.active.is_(True))
    return [_dag_row(r) for r in conn.execute(query)]


_DAG = select(dags).where(dags.c.dag_id == bindparam("dag_id"))
_VERSION = select(dag_versions).where(
    dag_versions.c.dag_id == bindparam("dag_id"), dag_versions.c.version == bindparam("version")
)
"""Built once: every trigger and run read looks a DAG and its version up (building a statement
cost four times what running it does)."""


def get_dag(conn: Connection, dag_id: str) -> DagRow | None:
    row = conn.execute(_DAG, {"dag_id": dag_id}).first()
    return _dag_row(row) if row is not None else None


def get_version(conn: Connection, dag_id: str, version: int) -> VersionRow | None:
    row = conn.execute(_VERSION, {"dag_id": dag_id, "version": version}).first()
    return _version_row(row) if row is not None else None


def latest_version(conn: Connection, dag_id: str) -> VersionRow | None:
    """The version `dags.latest_version` points at (not always the highest number: see record_dag_version)."""
    dag = get_dag(conn, dag_id)
    return get_version(conn, dag_id, dag.latest_version) if dag is not None else None


def list_versions(conn: Connection, dag_id: str) -> list[VersionRow]:
    """Every version of a DAG, newest first."""
    query = (
        select(dag_versions).where(dag_versions.c.dag_id == dag_id).order_by(dag_versions.c.version.desc())
    )
    return [_version_row(r) for r in conn.execute(query)]


def schedulable_dags(conn: Connection, lock: bool = False) -> list[tuple[DagRow, VersionRow]]:
    """Active, unpaused DAGs whose latest version has a schedule, with that version, ordered by id.

    With `lock`, the DAG rows are locked for this transaction and rows another transaction holds
    are skipped (PostgreSQL), so two schedulers never fire the same DAG at once.
    """
    query = (
        select(dags, *_version_columns())
        .join(
            dag_versions,
            (dag_versions.c.dag_id == dags.c.dag_id) & (dag_versions.c.version == dags.c.latest_version),
        )
        .where(dags.c.active.is_(True), dags.c.paused.is_(False), dags.c.schedule.is_not(None))
        .order_by(dags.c.dag_id)
    )
    if lock:
        query = query.with_for_update(skip_locked=True, of=dags)
    pairs = [(_dag_row(r), _version_row(r, prefix="v_")) for r in conn.execute(query)]
    return [(dag, version) for dag, version in pairs if version.spec.schedule is not None]


def list_import_errors(conn: Connection, tenants: frozenset[str] | None = None) -> list[ImportErrorRow]:
    """Every file (of `tenants`, if given) that failed to load, ordered by file path."""
    query = select(import_errors).order_by(import_errors.c.fileloc)
    if tenants is not None:
        query = query.where(import_errors.c.tenant_id.in_(sorted(tenants)))
    return [ImportErrorRow(r.tenant_id, r.fileloc, r.error, r.recorded_at) for r in conn.execute(query)]


def active_owners(conn: Connection, dag_ids: Collection[str]) -> dict[str, str]:
    """The file that defines each of `dag_ids` among the active DAGs (dag_id -> fileloc)."""
    if not dag_ids:
        return {}
    query = select(dags.c.dag_id, dags.c.fileloc).where(dags.c.active.is_(True), dags.c.dag_id.in_(dag_ids))
    return {r.dag_id: r.fileloc for r in conn.execute(query)}


# Writes by users (API, CLI) and the scheduler -------------------------------------------------------


def set_paused(conn: Connection, dag_id: str, paused: bool) -> bool:
    """Pause or unpause a DAG; False if there is no such DAG."""
    result = conn.execute(update(dags).where(dags.c.dag_id == dag_id).values(paused=paused))
    return bool(result.rowcount)


def set_next_fire(conn: Connection, dag_id: str, when: datetime | None) -> None:
    conn.execute(update(dags).where(dags.c.dag_id == dag_id).values(next_fire_at=when))


# Writes by the DAG processor ---------------------------------------------------------------------


def record_dag_version(
    conn: Connection, spec: DagSpec, source: str, version_hash: str, now: datetime
) -> RecordedVersion:
    """Make (spec, source) the DAG's latest version and (re)activate the DAG under `spec.fileloc`.

    A new version (previous highest + 1) is stored only if no version of this DAG has `version_hash`;
    going back to an older definition points `latest_version` at that old version again. `paused`,
    `next_fire_at` and `created_at` of an existing DAG are kept; a new DAG starts unpaused.
    """
    version = _version_with_hash(conn, spec.dag_id, version_hash)
    new_version = version is None
    if version is None:
        version = _highest_version(conn, spec.dag_id) + 1
        conn.execute(
            insert(dag_versions).values(
                dag_id=spec.dag_id,
                version=version,
                hash=version_hash,
                spec=spec.to_json(),
                source=source,
                fileloc=spec.fileloc,
                created_at=now,
            )
        )
    return RecordedVersion(version, new_version, _write_dag_row(conn, spec, version, now))


def deactivate_dags(conn: Connection, dag_ids: Collection[str], now: datetime) -> int:
    """Mark DAGs inactive (their file or definition is gone); returns how many were active."""
    if not dag_ids:
        return 0
    result = conn.execute(
        update(dags)
        .where(dags.c.dag_id.in_(dag_ids), dags.c.active.is_(True))
        .values(active=False, updated_at=now)
    )
    return int(result.rowcount or 0)


def deactivate_dropped(conn: Connection, fileloc: str, kept: Collection[str], now: datetime) -> int:
    """Deactivate the active DAGs of `fileloc` that the file no longer defines (ids not in `kept`)."""
    query = select(dags.c.dag_id).where(dags.c.active.is_(True), dags.c.fileloc == fileloc)
    dropped = [dag_id for dag_id in conn.execute(query).scalars() if dag_id not in kept]
    return deactivate_dags(conn, dropped, now)


def deactivate_missing(conn: Connection, tenant: str, present: Collection[str], now: datetime) -> int:
    """Deactivate the tenant's active DAGs whose file is not in `present`; drop those files' import errors.

    Returns how many DAGs were deactivated. `present` is every DAG file the tenant's processor found.
    """
    present = set(present)
    rows = conn.execute(
        select(dags.c.dag_id, dags.c.fileloc).where(dags.c.active.is_(True), dags.c.tenant_id == tenant)
    )
    missing = [r.dag_id for r in rows if r.fileloc not in present]
    errors = select(import_errors.c.fileloc).where(import_errors.c.tenant_id == tenant)
    stale = [f for f in conn.execute(errors).scalars() if f not in present]
    if stale:
        conn.execute(delete(import_errors).where(import_errors.c.fileloc.in_(stale)))
    return deactivate_dags(conn, missing, now)


def record_import_error(conn: Connection, tenant: str, fileloc: str, error: str, now: datetime) -> None:
    row = {"tenant_id": tenant, "fileloc": fileloc, "error": error, "recorded_at": now}
    upsert(conn, import_errors, [row], ["fileloc"])


def clear_import_error(conn: Connection, fileloc: str) -> bool:
    """Forget a file's import error; True if it had one."""
    result = conn.execute(delete(import_errors).where(import_errors.c.fileloc == fileloc))
    return bool(result.rowcount)


# Helpers -----------------------------------------------------------------------------------------


def _version_with_hash(conn: Connection, dag_id: str, version_hash: str) -> int | None:
    query = select(dag_versions.c.version).where(
        dag_versions.c.dag_id == dag_id, dag_versions.c.hash == version_hash
    )
    found = conn.execute(query).scalar()
    return int(found) if found is not None else None


def _highest_version(conn: Connection, dag_id: str) -> int:
    query = select(func.max(dag_versions.c.version)).where(dag_versions.c.dag_id == dag_id)
    return int(conn.execute(query).scalar() or 0)


def _write_dag_row(conn: Connection, spec: DagSpec, version: int, now: datetime) -> bool:
    """Insert or update the DAG's row from `spec`; returns False when the row was already up to date."""
    values: dict[str, Any] = {
        "fileloc": spec.fileloc,
        "latest_version": version,
        "active": True,
        "owner": spec.owner,
        "description": spec.description,
        "tags": list(spec.tags),
        "schedule": spec.schedule.describe() if spec.schedule else None,
        "timezone": spec.timezone,
    }
    existing = conn.execute(select(dags).where(dags.c.dag_id == spec.dag_id)).first()
    if existing is None:
        conn.execute(
            insert(dags).values(
                dag_id=spec.dag_id,
                tenant_id=tenant_of(spec.dag_id),
                paused=False,
                next_fire_at=None,
                created_at=now,
                updated_at=now,
                **values,
            )
        )
        return True
    if all(existing._mapping[key] == value for key, value in values.items()):
        return False
    conn.execute(update(dags).where(dags.c.dag_id == spec.dag_id).values(updated_at=now, **values))
    return True


def _version_columns() -> list[Any]:
    return [c.label(f"v_{c.name}") for c in dag_versions.c]


def _dag_row(row: Row[Any]) -> DagRow:
    m = row._mapping
    return DagRow(
        dag_id=m["dag_id"],
        tenant_id=m["tenant_id"],
        fileloc=m["fileloc"],
        latest_version=m["latest_version"],
        paused=bool(m["paused"]),
        active=bool(m["active"]),
        owner=m["owner"],
        description=m["description"],
        tags=list(m["tags"] or []),
        schedule=m["schedule"],
        timezone=m["timezone"],
        next_fire_at=m["next_fire_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


_specs: OrderedDict[str, DagSpec] = OrderedDict()


def _parsed_spec(version_hash: str, text: str) -> DagSpec:
    """The spec of a version, parsed once per process (a version's hash fixes its content)."""
    spec = _specs.get(version_hash)
    if spec is None:
        spec = _specs[version_hash] = DagSpec.from_json(text)
        if len(_specs) > 1024:
            _specs.popitem(last=False)
    return spec


def _version_row(row: Row[Any], prefix: str = "") -> VersionRow:
    m = row._mapping
    return VersionRow(
        dag_id=m[f"{prefix}dag_id"],
        version=m[f"{prefix}version"],
        hash=m[f"{prefix}hash"],
        spec=_parsed_spec(m[f"{prefix}hash"], m[f"{prefix}spec"]),
        source=m[f"{prefix}source"],
        fileloc=m[f"{prefix}fileloc"],
        created_at=m[f"{prefix}created_at"],
    )
