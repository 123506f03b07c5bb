"""The wall clock, aware and in UTC: the default of the clocks that the scheduler and services take."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)
