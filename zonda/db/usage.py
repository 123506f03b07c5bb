"""Usage per tenant per UTC day (table `usage_daily`): added to as attempts finish, read for bills."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import date

from sqlalchemy import Connection, select

from zonda.core.usage import DayUsage, Usage
from zonda.db.dialect import add_to
from zonda.db.schema import usage_daily

_KEY = ("tenant_id", "day")


def add_usage(conn: Connection, days: Sequence[DayUsage]) -> None:
    """Add each day's usage to its (tenant, day) row: one statement for the whole batch."""
    add_to(
        conn, usage_daily, [{"tenant_id": d.tenant_id, "day": d.day, **asdict(d.usage)} for d in days], _KEY
    )


def usage_days(
    conn: Connection, *, tenants: frozenset[str] | None, since: date, until: date
) -> list[DayUsage]:
    """The rows of `tenants` (None = every tenant) from `since` to `until` (inclusive), by tenant then day."""
    c = usage_daily.c
    query = select(usage_daily).where(c.day >= since, c.day <= until).order_by(c.tenant_id, c.day)
    if tenants is not None:
        query = query.where(c.tenant_id.in_(sorted(tenants)))
    return [
        DayUsage(r.tenant_id, r.day, Usage(r.attempts, r.task_seconds, r.cpu_seconds, r.gpu_seconds))
        for r in conn.execute(query)
    ]
