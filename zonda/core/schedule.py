"""Schedule math: durations, cron and interval schedules, and which runs are due.

Everything here is pure: no I/O and no clock; the current time is always passed in.
Datetimes in and out are timezone-aware; results are always in UTC.

Cron schedules are evaluated in the wall-clock time of the DAG's timezone with cronsim's
Debian-cron DST rules: for a job at a fixed time (minute and hour fields not starting with `*`),
a time skipped by spring-forward fires once right after the jump and a time repeated by fall-back
fires once (at its first occurrence); jobs with `*` in the minute or hour field follow real time
(an hourly job fires 25 times on a fall-back day and 23 times on a spring-forward day).
Interval schedules are fixed elapsed time from an anchor and ignore DST.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from zonda.core.spec import ScheduleSpec
from zonda.errors import ScheduleError

PRESETS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"\s*({_NUMBER})\s*(ms|s|m|h|d)\s*")
_DURATION_FULL = re.compile(rf"(?:\s*{_NUMBER}\s*(?:ms|s|m|h|d)\s*)+")
_DURATION_HINT = "use seconds (90) or numbers with units such as '500ms', '10s', '5m', '2h', '1d' or '1h30m'"

_CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_CRON_RANGES = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31 (or L, LW) and exist in the months chosen",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 or SUN-SAT (0 and 7 are Sunday)",
}
_CRON_HINT = "use five fields 'min hour day month weekday' or a preset such as @daily"
_ONE_US = timedelta(microseconds=1)


# Durations -----------------------------------------------------------------------------------------


def parse_duration(text: str | float | int | timedelta) -> float:
    """Return a positive duration in seconds from a number, a timedelta or a string like '1h30m'."""
    if isinstance(text, bool):
        raise ScheduleError(f"duration {text!r} is not valid; {_DURATION_HINT}")
    if isinstance(text, timedelta):
        return _positive(text.total_seconds(), text)
    if isinstance(text, int | float):
        return _positive(float(text), text)
    return _positive(_parse_duration_text(text), text)


def _parse_duration_text(text: str) -> float:
    """Return the seconds a duration string stands for, or raise ScheduleError."""
    stripped = text.strip().lower()
    try:
        return float(stripped)
    except ValueError:
        pass
    if not _DURATION_FULL.fullmatch(stripped):
        raise ScheduleError(f"duration {text!r} is not valid; {_DURATION_HINT}")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(stripped))


def _positive(seconds: float, original: object) -> float:
    """Return `seconds` if it is finite and above zero, else raise ScheduleError."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ScheduleError(f"duration {original!r} must be a finite time above zero; {_DURATION_HINT}")
    return seconds


# Specs and timezones --------------------------------------------------------------------------------


def schedule_spec(value: str | ScheduleSpec | None) -> ScheduleSpec | None:
    """Return the validated ScheduleSpec for a cron string, preset or spec (None stays None)."""
    if value is None:
        return None
    if isinstance(value, ScheduleSpec):
        return _check_spec(value)
    if not isinstance(value, str):
        raise ScheduleError(f"schedule {value!r} is not valid; {_CRON_HINT}, or a timedelta for an interval")
    return ScheduleSpec(kind="cron", expr=normalize_cron(value))


@lru_cache(maxsize=1024)
def normalize_cron(expr: str) -> str:
    """Return the canonical five-field cron expression for `expr` or a preset; raise ScheduleError."""
    text = " ".join(expr.split())
    if not text:
        raise ScheduleError(f"cron expression {expr!r} is empty; {_CRON_HINT}")
    if text.startswith("@"):
        return _preset(text)
    fields = text.split(" ")
    if len(fields) != len(_CRON_FIELDS):
        count = f"{len(fields)} field" + ("" if len(fields) == 1 else "s")
        raise ScheduleError(f"cron expression {expr!r} is not valid: it has {count}, not 5; {_CRON_HINT}")
    _check_cron(text, expr)
    return text.upper()


def _preset(text: str) -> str:
    """Return the cron expression of a preset such as @daily, or raise ScheduleError."""
    try:
        return PRESETS[text.lower()]
    except KeyError:
        names = ", ".join(sorted(PRESETS))
        raise ScheduleError(f"schedule preset {text!r} is not known; use one of {names}") from None


def _check_cron(text: str, original: str) -> None:
    """Raise ScheduleError naming the bad field if cronsim rejects `text` or it never fires."""
    try:
        next(CronSim(text.upper(), datetime(2000, 1, 1)))
    except (CronSimError, ValueError) as exc:
        raise ScheduleError(
            f"cron expression {original!r} is not valid: {_cron_problem(text, exc)}"
        ) from None
    except StopIteration:
        raise ScheduleError(f"cron expression {original!r} never fires; {_CRON_HINT}") from None


def _cron_problem(text: str, exc: Exception) -> str:
    """Explain which cron field cronsim rejected and what values it accepts."""
    message = str(exc)
    for index, name in enumerate(_CRON_FIELDS):
        if message == f"Bad {name}":
            value = text.split(" ")[index]
            return f"{name} field {value!r} must be {_CRON_RANGES[name]}; {_CRON_HINT}"
    return f"{message}; {_CRON_HINT}"


def _check_spec(spec: ScheduleSpec) -> ScheduleSpec:
    """Return `spec` if its interval is positive or its cron expression valid, else raise."""
    if spec.kind == "interval":
        _interval_step(spec.seconds)
        return spec
    if spec.kind == "cron":
        return ScheduleSpec(kind="cron", expr=normalize_cron(spec.expr))
    raise ScheduleError(f"schedule kind {spec.kind!r} is not valid; use 'cron' or 'interval'")


def _interval_step(seconds: float) -> timedelta:
    """Return the interval as a timedelta of at least one microsecond, or raise ScheduleError."""
    if not math.isfinite(seconds) or round(seconds * 1_000_000) < 1:
        raise ScheduleError(
            f"interval of {seconds!r} seconds is not valid; use a positive interval like '10s'"
        )
    return timedelta(microseconds=round(seconds * 1_000_000))


def validate_timezone(name: str) -> ZoneInfo:
    """Return the ZoneInfo for an IANA timezone name, or raise ScheduleError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise ScheduleError(
            f"timezone {name!r} is not known; use an IANA name such as 'Europe/London' or 'UTC'"
        ) from None


def _utc(value: datetime, what: str) -> datetime:
    """Return an aware datetime converted to UTC; raise ScheduleError for a naive one."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(f"{what} {value.isoformat()} has no timezone; pass a timezone-aware datetime")
    return value.astimezone(UTC)


# Fire times -----------------------------------------------------------------------------------------


def next_fire(spec: ScheduleSpec, tz: str, after: datetime, anchor: datetime | None = None) -> datetime:
    """Return the first fire time strictly after `after` (intervals count from `anchor`, default epoch)."""
    after, zone = _utc(after, "after"), validate_timezone(tz)
    if spec.kind == "interval":
        return _interval_next(_interval_step(spec.seconds), _anchor(anchor), after)
    return _cron_next(normalize_cron(spec.expr), zone, after)


def _anchor(anchor: datetime | None) -> datetime:
    """Return the interval anchor in UTC: the given one, or the Unix epoch."""
    return EPOCH if anchor is None else _utc(anchor, "anchor")


def _interval_next(step: timedelta, anchor: datetime, after: datetime) -> datetime:
    """Return the first `anchor + k*step` (k >= 0) strictly after `after`."""
    if after < anchor:
        return anchor
    return anchor + ((after - anchor) // step + 1) * step


def _cron_next(expr: str, zone: ZoneInfo, after: datetime) -> datetime:
    """Return the first cron fire strictly after `after` (UTC), evaluated in `zone` wall time."""
    it = CronSim(expr, after.astimezone(zone))
    try:
        fire = next(it).astimezone(UTC)
        while fire <= after:  # a repeated (fall-back) hour can yield its first occurrence again
            fire = next(it).astimezone(UTC)
    except StopIteration:
        raise ScheduleError(f"cron expression {expr!r} does not fire after {after.isoformat()}") from None
    return fire


def first_fire(spec: ScheduleSpec, tz: str, start_date: datetime | None, now: datetime) -> datetime:
    """Return the first fire at or after `start_date`, or strictly after `now` without a start date."""
    if start_date is None:
        return next_fire(spec, tz, now)
    return next_fire(spec, tz, _utc(start_date, "start_date") - _ONE_US, anchor=start_date)


def due_fires(
    spec: ScheduleSpec,
    tz: str,
    next_due: datetime,
    now: datetime,
    catchup: bool,
    *,
    anchor: datetime | None = None,
    limit: int = 1000,
) -> tuple[list[datetime], datetime]:
    """Return (fire times in [next_due, now] to run, new next_due); without catchup only the latest."""
    next_due, now = _utc(next_due, "next_due"), _utc(now, "now")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if next_due > now:
        return [], next_due
    if catchup:
        return _catchup_fires(spec, tz, next_due, now, anchor=anchor, limit=limit)
    latest = _latest_fire(spec, tz, next_due, now, anchor)
    return ([] if latest is None else [latest]), next_fire(spec, tz, now, anchor)


def _catchup_fires(
    spec: ScheduleSpec, tz: str, next_due: datetime, now: datetime, *, anchor: datetime | None, limit: int
) -> tuple[list[datetime], datetime]:
    """Return up to `limit` fires in [next_due, now] and the fire that follows the last of them."""
    fires: list[datetime] = []
    fire = next_fire(spec, tz, next_due - _ONE_US, anchor)
    while fire <= now and len(fires) < limit:
        fires.append(fire)
        fire = next_fire(spec, tz, fire, anchor)
    return fires, fire


def _latest_fire(
    spec: ScheduleSpec, tz: str, floor: datetime, now: datetime, anchor: datetime | None
) -> datetime | None:
    """Return the last fire time in [floor, now], or None, searching back from `now` in doubling windows."""
    if spec.kind == "interval":
        return _interval_latest(_interval_step(spec.seconds), _anchor(anchor), floor, now)
    window = timedelta(minutes=1)
    while True:
        start = max(floor, now - window)
        latest = _last_fire_in(spec, tz, start, now)
        if latest is not None or start == floor:
            return latest
        window *= 2


def _interval_latest(step: timedelta, anchor: datetime, floor: datetime, now: datetime) -> datetime | None:
    """Return the last `anchor + k*step` (k >= 0) in [floor, now], or None."""
    if now < anchor:
        return None
    latest = anchor + ((now - anchor) // step) * step
    return latest if latest >= floor else None


def _last_fire_in(spec: ScheduleSpec, tz: str, start: datetime, end: datetime) -> datetime | None:
    """Return the last fire time in [start, end] by stepping forward, or None."""
    latest = None
    fire = next_fire(spec, tz, start - _ONE_US)
    while fire <= end:
        latest, fire = fire, next_fire(spec, tz, fire)
    return latest


def fires_between(
    spec: ScheduleSpec,
    tz: str,
    start: datetime,
    end: datetime,
    *,
    anchor: datetime | None = None,
    limit: int = 10000,
) -> list[datetime]:
    """Return every fire time in [start, end] (for backfill); raise ScheduleError past `limit` fires."""
    start, end = _utc(start, "start"), _utc(end, "end")
    if start > end:
        raise ScheduleError(f"backfill start {start.isoformat()} is after end {end.isoformat()}; swap them")
    fires: list[datetime] = []
    fire = next_fire(spec, tz, start - _ONE_US, anchor)
    while fire <= end:
        if len(fires) == limit:
            raise ScheduleError(f"more than {limit} runs between {start} and {end}; use a shorter range")
        fires.append(fire)
        fire = next_fire(spec, tz, fire, anchor)
    return fires
