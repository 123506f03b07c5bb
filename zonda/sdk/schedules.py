"""`every(...)`: interval schedules, down to seconds."""

from __future__ import annotations

from datetime import timedelta

from zonda.core.schedule import parse_duration
from zonda.core.spec import ScheduleSpec


def every(interval: str | float | timedelta) -> ScheduleSpec:
    """A schedule that fires every `interval`, e.g. `every("10s")`, `every("1h30m")`, `every(90)`."""
    return ScheduleSpec(kind="interval", seconds=parse_duration(interval))
