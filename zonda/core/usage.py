"""Usage accounting, without I/O: what a finished attempt costs, split over the UTC days it ran in.

Task-seconds are an attempt's wall-clock time between `started_at` and `ended_at`; CPU- and
GPU-seconds are task-seconds times the CPUs and GPUs the task declared (`@task(cpu=2, gpu=1)`).
An attempt that spans midnight (UTC) is charged to each day for the part it ran in that day; the
attempt itself is counted on the day it ended. An attempt that never started costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from zonda.errors import ParamsError


@dataclass(frozen=True, slots=True)
class Charge:
    """One finished attempt, as usage accounting sees it."""

    tenant_id: str
    started_at: datetime | None
    ended_at: datetime | None
    cpu: float = 1.0
    gpu: float = 0.0


@dataclass(frozen=True, slots=True)
class Usage:
    """Counters of usage: attempts, and seconds of task time, declared CPUs and declared GPUs."""

    attempts: int = 0
    task_seconds: float = 0.0
    cpu_seconds: float = 0.0
    gpu_seconds: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.attempts + other.attempts,
            self.task_seconds + other.task_seconds,
            self.cpu_seconds + other.cpu_seconds,
            self.gpu_seconds + other.gpu_seconds,
        )


@dataclass(frozen=True, slots=True)
class DayUsage:
    """What one tenant used on one UTC day."""

    tenant_id: str
    day: date
    usage: Usage


def seconds_per_day(start: datetime, end: datetime) -> list[tuple[date, float]]:
    """The seconds of [start, end) that fall in each UTC day, in day order (none if end <= start)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    parts: list[tuple[date, float]] = []
    while start < end:
        midnight = datetime.combine(start.date() + timedelta(days=1), time(), UTC)
        part_end = min(end, midnight)
        parts.append((start.date(), (part_end - start).total_seconds()))
        start = part_end
    return parts


def day_usage(charge: Charge) -> dict[date, Usage]:
    """One attempt's usage per UTC day; empty for an attempt without an end."""
    if charge.ended_at is None:
        return {}
    out: dict[date, Usage] = {}
    if charge.started_at is not None:
        for day, seconds in seconds_per_day(charge.started_at, charge.ended_at):
            out[day] = Usage(0, seconds, seconds * charge.cpu, seconds * charge.gpu)
    end_day = charge.ended_at.astimezone(UTC).date()
    out[end_day] = out.get(end_day, Usage()) + Usage(attempts=1)
    return out


def rollup(charges: Iterable[Charge]) -> list[DayUsage]:
    """Usage summed per (tenant, UTC day), sorted by tenant then day."""
    total: dict[tuple[str, date], Usage] = {}
    for charge in charges:
        for day, usage in day_usage(charge).items():
            key = (charge.tenant_id, day)
            total[key] = total.get(key, Usage()) + usage
    return [DayUsage(tenant, day, total[tenant, day]) for tenant, day in sorted(total)]


def total(days: Iterable[DayUsage]) -> Usage:
    """The sum of some days' usage (the total of a bill)."""
    return sum((d.usage for d in days), Usage())


_RELATIVE = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_since(text: str, now: datetime) -> datetime:
    """A start time from `30d`, `12h`, `45m` (before `now`) or an ISO date/datetime (naive = UTC).

    Raises ParamsError naming the accepted forms.
    """
    relative = _RELATIVE.match(text)
    if relative:
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ParamsError(
            f"{text!r} is not a time: use a number of days, hours or minutes back (30d, 12h, 45m) "
            "or an ISO date such as 2026-01-31"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
