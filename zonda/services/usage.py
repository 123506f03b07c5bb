"""Usage reports: task-, CPU- and GPU-seconds per tenant per UTC day, for the tenants the caller reads.

Reading usage needs READ, not ADMINISTER: a tenant's usage is a sum over its runs, which every
member can already list with their durations, so hiding it would protect nothing, and viewers are
the people who need to see what their team's pipelines cost.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta
from itertools import groupby
from typing import TYPE_CHECKING

from zonda.api.schemas.usage import UsageCounters, UsageDay, UsageReport, UsageTotal
from zonda.core.permissions import Action
from zonda.core.usage import DayUsage, total
from zonda.db.engine import read_txn
from zonda.db.usage import usage_days
from zonda.errors import ParamsError
from zonda.services.access import require, visible

if TYPE_CHECKING:
    from zonda.services.context import Services

DEFAULT_DAYS = 30


def usage_report(
    svc: Services, *, tenant: str | None = None, since: date | None = None, until: date | None = None
) -> UsageReport:
    """Usage of `tenant` (else of every tenant the caller sees) from `since` to `until`, both included.

    Defaults: until today (UTC), since 30 days before `until`. Another tenant is NotFoundError;
    a period that ends before it starts is ParamsError.
    """
    until = until or svc.now().date()
    since = since or until - timedelta(days=DEFAULT_DAYS)
    if since > until:
        message = f"since ({since}) is after until ({until}); give since <= until"
        raise ParamsError(message, [{"param": "since", "message": message}])
    if tenant is not None:
        require(svc, tenant, Action.READ, f"tenant '{tenant}'")
    tenants = frozenset({tenant}) if tenant is not None else visible(svc)
    with read_txn(svc.engine) as conn:
        days = usage_days(conn, tenants=tenants, since=since, until=until)
    return UsageReport(
        since=since,
        until=until,
        days=[UsageDay(tenant_id=d.tenant_id, day=d.day, **asdict(d.usage)) for d in days],
        tenants=[UsageTotal(tenant_id=t, **asdict(total(rows))) for t, rows in groupby(days, key=_tenant_of)],
        total=UsageCounters(**asdict(total(days))),
    )


def _tenant_of(day: DayUsage) -> str:
    return day.tenant_id
