"""Times given by callers (query parameters, bodies), read the one way every service reads them."""

from __future__ import annotations

from datetime import UTC, datetime

from zonda.errors import ParamsError


def as_utc(value: datetime | None, param: str) -> datetime | None:
    """The time in UTC (naive times read as UTC); ParamsError naming `param` if it leaves the calendar."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except OverflowError:
        message = f"{param} {value.isoformat()} is out of range once converted to UTC"
        raise ParamsError(message, [{"param": param, "message": message}]) from None
