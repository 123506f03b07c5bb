"""The JSON shape of usage reports: per tenant per UTC day, with totals (the basis of a bill)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel


class UsageCounters(BaseModel):
    """Finished attempts, and the seconds of task time, declared CPUs and declared GPUs they used."""

    attempts: int = 0
    task_seconds: float = 0.0
    cpu_seconds: float = 0.0
    gpu_seconds: float = 0.0


class UsageDay(UsageCounters):
    """What one tenant used on one UTC day."""

    tenant_id: str
    day: date


class UsageTotal(UsageCounters):
    """What one tenant used over the whole period."""

    tenant_id: str


class UsageReport(BaseModel):
    """Usage from `since` to `until` (UTC days, both included): rows per tenant per day, then totals."""

    since: date
    until: date
    days: list[UsageDay]
    tenants: list[UsageTotal]
    total: UsageCounters
