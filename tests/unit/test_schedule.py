"""Schedule math: durations, presets, validation, cron across DST, intervals, due runs and backfill."""

from __future__ import annotations

import itertools
import random
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from zonda.core.schedule import (
    PRESETS,
    due_fires,
    fires_between,
    first_fire,
    next_fire,
    parse_duration,
    schedule_spec,
    validate_timezone,
)
from zonda.core.spec import ScheduleSpec
from zonda.errors import ScheduleError

LONDON = "Europe/London"
NEW_YORK = "America/New_York"


def utc(*parts: int) -> datetime:
    """An aware UTC datetime from year, month, day[, hour, minute, second, microsecond]."""
    year, month, day, *clock = parts
    hour, minute, second, micro = [*clock, 0, 0, 0, 0][:4]
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def cron(expr: str) -> ScheduleSpec:
    return ScheduleSpec(kind="cron", expr=expr)


def every(seconds: float) -> ScheduleSpec:
    return ScheduleSpec(kind="interval", seconds=seconds)


def chain(spec: ScheduleSpec, tz: str, after: datetime, until: datetime) -> list[datetime]:
    """Fire times strictly after `after` and at or before `until`, by iterating next_fire."""
    fires = []
    fire = next_fire(spec, tz, after)
    while fire <= until:
        fires.append(fire)
        fire = next_fire(spec, tz, fire)
    return fires


# Durations ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("10s", 10.0),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        (" 1h 30m ", 5400.0),
        ("1.5h", 5400.0),
        ("90", 90.0),
        ("0.25", 0.25),
        (90, 90.0),
        (0.5, 0.5),
        (timedelta(minutes=2), 120.0),
        (timedelta(milliseconds=10), 0.01),
    ],
)
def test_parse_duration_accepts(value: str | float | timedelta, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "above zero"),
        ("0s", "above zero"),
        ("-5", "above zero"),
        (0, "above zero"),
        (-1.5, "above zero"),
        (timedelta(0), "above zero"),
        (timedelta(seconds=-1), "above zero"),
        ("inf", "above zero"),
        ("abc", "not valid"),
        ("5x", "not valid"),
        ("", "not valid"),
        ("m", "not valid"),
        ("1h-30m", "not valid"),
        (True, "not valid"),
    ],
)
def test_parse_duration_rejects(value: str | float | timedelta, message: str) -> None:
    with pytest.raises(ScheduleError, match=message) as info:
        parse_duration(value)
    assert "'10s'" in str(info.value)  # the message shows a valid example


# Presets and specs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "expr"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
        (" @hourly ", "0 * * * *"),
    ],
)
def test_presets_expand_to_cron(preset: str, expr: str) -> None:
    assert schedule_spec(preset) == cron(expr)
    assert PRESETS[preset.strip().lower()] == expr


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("*/5 * * * *", cron("*/5 * * * *")),
        ("  0   5 * *  * ", cron("0 5 * * *")),
        ("0 9 * * mon-fri", cron("0 9 * * MON-FRI")),
        ("0 0 L * *", cron("0 0 L * *")),
        (cron("@daily"), cron("0 0 * * *")),
        (every(10), every(10)),
        (every(0.001), every(0.001)),
    ],
)
def test_schedule_spec_normalizes(value: str | ScheduleSpec | None, expected: ScheduleSpec | None) -> None:
    assert schedule_spec(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("61 * * * *", "minute field '61' must be 0-59"),
        ("* 24 * * *", "hour field '24' must be 0-23"),
        ("0 0 32 * *", "day-of-month field '32' must be 1-31"),
        ("0 0 30 2 *", "day-of-month field '30'"),
        ("0 0 * 13 *", "month field '13' must be 1-12"),
        ("0 0 * * 8", "day-of-week field '8' must be 0-7"),
        ("*/0 * * * *", "minute field '\\*/0'"),
        ("a b c d e", "minute field 'a'"),
        ("* * *", "it has 3 fields, not 5"),
        ("0 * * * * *", "it has 6 fields, not 5"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("@often", "preset '@often' is not known; use one of .*@daily"),
        (cron("61 * * * *"), "minute field '61'"),
        (every(0), "interval of 0 seconds is not valid"),
        (every(-10), "interval of -10 seconds is not valid"),
        (every(float("nan")), "interval of nan seconds is not valid"),
    ],
)
def test_schedule_spec_rejects_with_helpful_message(value: str | ScheduleSpec, message: str) -> None:
    with pytest.raises(ScheduleError, match=message) as info:
        schedule_spec(value)
    if isinstance(value, str) and not value.strip().startswith("@"):
        assert "use five fields 'min hour day month weekday' or a preset such as @daily" in str(info.value)


@pytest.mark.parametrize("name", ["UTC", LONDON, NEW_YORK, "Asia/Kolkata"])
def test_validate_timezone_accepts(name: str) -> None:
    assert validate_timezone(name) == ZoneInfo(name)


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "", "Europe", "../etc/passwd", "GMT+25"])
def test_validate_timezone_rejects(name: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(f"timezone '{name}' is not known")) as info:
        validate_timezone(name)
    assert "'Europe/London'" in str(info.value) and "'UTC'" in str(info.value)


def test_next_fire_rejects_bad_timezone_and_naive_datetimes() -> None:
    with pytest.raises(ScheduleError, match="timezone 'Nowhere/City'"):
        next_fire(cron("0 * * * *"), "Nowhere/City", utc(2026, 1, 1))
    with pytest.raises(ScheduleError, match="timezone 'Nowhere/City'"):
        next_fire(every(10), "Nowhere/City", utc(2026, 1, 1))
    with pytest.raises(ScheduleError, match="has no timezone"):
        next_fire(cron("0 * * * *"), "UTC", datetime(2026, 1, 1))
    with pytest.raises(ScheduleError, match="has no timezone"):
        due_fires(every(10), "UTC", datetime(2026, 1, 1), utc(2026, 1, 1), catchup=True)


# next_fire: cron ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("0 * * * *", utc(2026, 1, 1, 10, 0), utc(2026, 1, 1, 11, 0)),  # strictly after
        ("0 * * * *", utc(2026, 1, 1, 9, 59, 59, 999999), utc(2026, 1, 1, 10, 0)),
        ("0 * * * *", utc(2026, 1, 1, 10, 0, 0, 1), utc(2026, 1, 1, 11, 0)),
        ("*/15 * * * *", utc(2026, 1, 1, 10, 7), utc(2026, 1, 1, 10, 15)),
        ("0 0 * * *", utc(2026, 12, 31, 23, 59), utc(2027, 1, 1)),
        ("0 0 29 2 *", utc(2026, 1, 1), utc(2028, 2, 29)),
        ("0 9 * * MON-FRI", utc(2026, 1, 2, 9, 0), utc(2026, 1, 5, 9, 0)),  # Fri -> Mon
        ("0 0 L * *", utc(2026, 2, 1), utc(2026, 2, 28)),
        ("0 0 1 * *", utc(2026, 1, 15), utc(2026, 2, 1)),
    ],
)
def test_next_fire_cron_utc(expr: str, after: datetime, expected: datetime) -> None:
    fire = next_fire(cron(expr), "UTC", after)
    assert fire == expected
    assert fire.tzinfo is UTC


@pytest.mark.parametrize(
    ("tz", "expr", "after", "expected"),
    [
        # Europe/London spring-forward 2026-03-29: 01:00 GMT jumps to 02:00 BST; 01:30 does not exist.
        (LONDON, "30 1 * * *", utc(2026, 3, 28, 0, 0), utc(2026, 3, 28, 1, 30)),  # 01:30 GMT
        (
            LONDON,
            "30 1 * * *",
            utc(2026, 3, 28, 1, 30),
            utc(2026, 3, 29, 1, 0),
        ),  # 02:00 BST, right after jump
        (LONDON, "30 1 * * *", utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)),  # 01:30 BST
        (LONDON, "0 2 * * *", utc(2026, 3, 28, 12), utc(2026, 3, 29, 1, 0)),  # 02:00 BST exists
        # Europe/London fall-back 2026-10-25: 02:00 BST goes back to 01:00 GMT; 01:30 happens twice.
        (LONDON, "30 1 * * *", utc(2026, 10, 24, 12), utc(2026, 10, 25, 0, 30)),  # first 01:30 (BST)
        (LONDON, "30 1 * * *", utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)),  # not again at GMT
        (LONDON, "30 1 * * *", utc(2026, 10, 25, 1, 10), utc(2026, 10, 26, 1, 30)),  # after, inside 2nd 01:xx
        (LONDON, "0 9 * * *", utc(2026, 10, 25, 0), utc(2026, 10, 25, 9)),  # 09:00 GMT
        (LONDON, "0 9 * * *", utc(2026, 10, 24, 0), utc(2026, 10, 24, 8)),  # 09:00 BST
        # America/New_York spring-forward 2026-03-08: 02:00 EST jumps to 03:00 EDT.
        (NEW_YORK, "30 2 * * *", utc(2026, 3, 7, 12), utc(2026, 3, 8, 7, 0)),  # 03:00 EDT
        (NEW_YORK, "30 2 * * *", utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)),  # 02:30 EDT
        # America/New_York fall-back 2026-11-01: 02:00 EDT goes back to 01:00 EST.
        (NEW_YORK, "30 1 * * *", utc(2026, 10, 31, 12), utc(2026, 11, 1, 5, 30)),  # 01:30 EDT
        (NEW_YORK, "30 1 * * *", utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)),  # 01:30 EST next day
        (NEW_YORK, "0 0 * * *", utc(2026, 11, 1, 3), utc(2026, 11, 1, 4)),  # midnight EDT
        (NEW_YORK, "0 0 * * *", utc(2026, 11, 1, 4), utc(2026, 11, 2, 5)),  # midnight EST
    ],
)
def test_next_fire_cron_across_dst(tz: str, expr: str, after: datetime, expected: datetime) -> None:
    assert next_fire(cron(expr), tz, after) == expected


@pytest.mark.parametrize(
    ("tz", "local_day", "expected_count"),
    [
        (LONDON, (2026, 10, 25), 25),  # fall-back: the 01:00 hour happens twice
        (LONDON, (2026, 3, 29), 23),  # spring-forward: the 01:00 hour never happens
        (NEW_YORK, (2026, 11, 1), 25),
        (NEW_YORK, (2026, 3, 8), 23),
        ("UTC", (2026, 10, 25), 24),
    ],
)
def test_hourly_cron_follows_real_hours_over_dst_nights(
    tz: str, local_day: tuple[int, int, int], expected_count: int
) -> None:
    zone = ZoneInfo(tz)
    day_start = datetime(*local_day, tzinfo=zone).astimezone(UTC)
    day_end = (datetime(*local_day, tzinfo=zone) + timedelta(days=1)).astimezone(UTC)
    fires = chain(cron("0 * * * *"), tz, day_start - timedelta(seconds=1), day_end - timedelta(seconds=1))
    assert len(fires) == expected_count
    assert len(set(fires)) == len(fires)  # no duplicates
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(fires))  # no skipped hour
    assert fires[0] == day_start
    assert all(f.astimezone(zone).minute == 0 for f in fires)


@pytest.mark.parametrize(
    ("tz", "expr", "start", "end", "fires_per_day"),
    [
        (LONDON, "30 1 * * *", utc(2026, 3, 25), utc(2026, 4, 2), 1),
        (LONDON, "30 1 * * *", utc(2026, 10, 21), utc(2026, 10, 29), 1),
        (NEW_YORK, "30 2 * * *", utc(2026, 3, 5), utc(2026, 3, 12), 1),
        (NEW_YORK, "30 1 * * *", utc(2026, 10, 29), utc(2026, 11, 5), 1),
        (LONDON, "0 9,21 * * *", utc(2026, 10, 21), utc(2026, 10, 29), 2),
    ],
)
def test_fixed_time_cron_fires_once_per_local_day_across_dst(
    tz: str, expr: str, start: datetime, end: datetime, fires_per_day: int
) -> None:
    zone = ZoneInfo(tz)
    fires = chain(cron(expr), tz, start, end)
    days = [f.astimezone(zone).date() for f in fires]
    assert all(days.count(day) == fires_per_day for day in days)
    assert len(set(days)) == len(days) // fires_per_day == (end - start).days


# next_fire: intervals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "after", "anchor", "expected"),
    [
        (10, utc(2026, 1, 1, 0, 0, 0), None, utc(2026, 1, 1, 0, 0, 10)),
        (10, utc(2026, 1, 1, 0, 0, 3), None, utc(2026, 1, 1, 0, 0, 10)),
        (10, utc(2026, 1, 1, 0, 0, 9, 999999), None, utc(2026, 1, 1, 0, 0, 10)),
        (10, utc(2026, 1, 1, 0, 0, 3), utc(2026, 1, 1, 0, 0, 5), utc(2026, 1, 1, 0, 0, 5)),
        (10, utc(2026, 1, 1, 0, 0, 5), utc(2026, 1, 1, 0, 0, 5), utc(2026, 1, 1, 0, 0, 15)),
        (10, utc(2025, 1, 1), utc(2026, 1, 1, 0, 0, 5), utc(2026, 1, 1, 0, 0, 5)),  # before the anchor
        (0.5, utc(2026, 1, 1, 0, 0, 0, 200000), None, utc(2026, 1, 1, 0, 0, 0, 500000)),
        (3600, utc(2026, 1, 1, 10, 30), utc(2025, 6, 1, 0, 15), utc(2026, 1, 1, 11, 15)),
        (86400, utc(2026, 1, 1, 10, 30), None, utc(2026, 1, 2)),
    ],
)
def test_next_fire_interval(
    seconds: float, after: datetime, anchor: datetime | None, expected: datetime
) -> None:
    assert next_fire(every(seconds), "UTC", after, anchor=anchor) == expected


@pytest.mark.parametrize(
    ("tz", "seconds", "start", "hours"),
    [
        (LONDON, 10, utc(2026, 10, 25, 0, 59), 1),
        (LONDON, 3600, utc(2026, 10, 24, 22), 6),  # fall-back night
        (LONDON, 3600, utc(2026, 3, 28, 22), 6),  # spring-forward night
        (NEW_YORK, 3600, utc(2026, 11, 1, 3), 6),
        (NEW_YORK, 1800, utc(2026, 3, 8, 5), 6),
    ],
)
def test_interval_is_fixed_elapsed_time_across_dst(
    tz: str, seconds: float, start: datetime, hours: int
) -> None:
    fires = chain(every(seconds), tz, start, start + timedelta(hours=hours))
    assert len(fires) == hours * 3600 // seconds
    assert all((b - a).total_seconds() == seconds for a, b in itertools.pairwise(fires))


def test_hourly_interval_shows_repeated_wall_clock_hour_on_fall_back() -> None:
    zone = ZoneInfo(LONDON)
    fires = chain(every(3600), LONDON, utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 3))
    local_hours = [f.astimezone(zone).hour for f in fires]
    assert local_hours == [0, 1, 1, 2, 3]  # 01:00 BST and 01:00 GMT are an hour apart


# Property-style: next_fire is strictly increasing and consistent from any starting point -----------------


@pytest.mark.parametrize("tz", ["UTC", LONDON, NEW_YORK, "Australia/Lord_Howe"])
@pytest.mark.parametrize(
    "spec",
    [
        cron("0 * * * *"),
        cron("30 1 * * *"),
        cron("30 2 * * *"),
        cron("*/20 1-3 * * *"),
        cron("0 */2 * * *"),
        cron("15,45 0-3 * * *"),
        cron("0 0 * * SUN"),
        every(97),
        every(2700),
    ],
    ids=lambda s: s.describe(),
)
def test_next_fire_strictly_increases_and_never_skips(spec: ScheduleSpec, tz: str) -> None:
    rng = random.Random(f"{spec.describe()}|{tz}")
    for window_start in (
        utc(2026, 3, 7),
        utc(2026, 3, 28),
        utc(2026, 10, 3),
        utc(2026, 10, 24),
        utc(2026, 11, 1),
    ):
        window_end = window_start + timedelta(days=8)
        fires = chain(spec, tz, window_start, window_end)
        assert fires, "every schedule here fires within eight days"
        assert all(a < b for a, b in itertools.pairwise(fires))
        for _ in range(40):
            after = window_start + timedelta(
                seconds=rng.uniform(0, (window_end - window_start).total_seconds())
            )
            expected = next((f for f in fires if f > after), None)
            fire = next_fire(spec, tz, after)
            assert fire > after
            if expected is not None:
                assert fire == expected


# first_fire -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "tz", "start_date", "now", "expected"),
    [
        (cron("0 0 * * *"), "UTC", utc(2026, 1, 1), utc(2026, 6, 1), utc(2026, 1, 1)),  # at start_date
        (cron("0 0 * * *"), "UTC", utc(2026, 1, 1, 0, 0, 1), utc(2026, 6, 1), utc(2026, 1, 2)),
        (cron("0 0 * * *"), "UTC", None, utc(2026, 6, 1), utc(2026, 6, 2)),  # strictly after now
        (cron("0 0 * * *"), "UTC", None, utc(2026, 6, 1, 0, 0, 1), utc(2026, 6, 2)),
        (cron("0 0 * * *"), NEW_YORK, utc(2026, 1, 1), utc(2026, 6, 1), utc(2026, 1, 1, 5)),
        (every(600), "UTC", utc(2026, 1, 1, 0, 3), utc(2026, 6, 1), utc(2026, 1, 1, 0, 3)),  # anchored
        (every(600), "UTC", None, utc(2026, 1, 1, 0, 3), utc(2026, 1, 1, 0, 10)),  # epoch anchor
    ],
)
def test_first_fire(
    spec: ScheduleSpec, tz: str, start_date: datetime | None, now: datetime, expected: datetime
) -> None:
    assert first_fire(spec, tz, start_date, now) == expected


# due_fires ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("catchup", [True, False])
def test_due_fires_nothing_due_keeps_next_due(catchup: bool) -> None:
    next_due = utc(2026, 1, 1, 11)
    assert due_fires(cron("0 * * * *"), "UTC", next_due, utc(2026, 1, 1, 10, 59), catchup) == ([], next_due)


HOURLY = cron("0 * * * *")
JAN1_10H = utc(2026, 1, 1, 10)


@pytest.mark.parametrize(
    ("spec", "tz", "window", "catchup", "expected"),
    [
        # On time: exactly the due fire, either way.
        (HOURLY, "UTC", (JAN1_10H, JAN1_10H), False, ([JAN1_10H], utc(2026, 1, 1, 11))),
        (HOURLY, "UTC", (JAN1_10H, utc(2026, 1, 1, 10, 0, 0, 3000)), True, ([JAN1_10H], utc(2026, 1, 1, 11))),
        # Three days down, hourly: without catchup only the latest, with catchup all 73.
        (
            HOURLY,
            "UTC",
            (JAN1_10H, utc(2026, 1, 4, 10, 30)),
            False,
            ([utc(2026, 1, 4, 10)], utc(2026, 1, 4, 11)),
        ),
        (
            HOURLY,
            "UTC",
            (JAN1_10H, utc(2026, 1, 4, 10, 30)),
            True,
            ([JAN1_10H + timedelta(hours=h) for h in range(73)], utc(2026, 1, 4, 11)),
        ),
        # Years down with a sparse cron: one run, the latest.
        (
            cron("0 0 1 1 *"),
            "UTC",
            (utc(2020, 1, 1), utc(2026, 6, 1)),
            False,
            ([utc(2026, 1, 1)], utc(2027, 1, 1)),
        ),
        # Down over spring-forward: the latest is 01:30 shifted to 02:00 BST (01:00 UTC).
        (
            cron("30 1 * * *"),
            LONDON,
            (utc(2026, 3, 20, 1, 30), utc(2026, 3, 29, 12)),
            False,
            ([utc(2026, 3, 29, 1)], utc(2026, 3, 30, 0, 30)),
        ),
        # Intervals, a month down, and a short catchup.
        (
            every(10),
            "UTC",
            (utc(2026, 1, 1), utc(2026, 2, 1, 0, 0, 25)),
            False,
            ([utc(2026, 2, 1, 0, 0, 20)], utc(2026, 2, 1, 0, 0, 30)),
        ),
        (
            every(10),
            "UTC",
            (utc(2026, 1, 1), utc(2026, 1, 1, 0, 0, 25)),
            True,
            ([utc(2026, 1, 1, 0, 0, s) for s in (0, 10, 20)], utc(2026, 1, 1, 0, 0, 30)),
        ),
    ],
)
def test_due_fires(
    spec: ScheduleSpec,
    tz: str,
    window: tuple[datetime, datetime],
    catchup: bool,
    expected: tuple[list[datetime], datetime],
) -> None:
    next_due, now = window
    assert due_fires(spec, tz, next_due, now, catchup) == expected


def test_due_fires_catchup_respects_limit_and_continues_without_gap_or_duplicate() -> None:
    spec, now = cron("*/5 * * * *"), utc(2026, 1, 2, 0, 2)
    runs: list[datetime] = []
    next_due = utc(2026, 1, 1)
    calls = 0
    while next_due <= now:
        fires, next_due = due_fires(spec, "UTC", next_due, now, True, limit=100)
        assert len(fires) <= 100
        runs += fires
        calls += 1
    assert calls == 3  # 289 fires in batches of 100
    assert runs == fires_between(spec, "UTC", utc(2026, 1, 1), now)
    assert len(runs) == len(set(runs)) == 289
    assert next_due == utc(2026, 1, 2, 0, 5)


@pytest.mark.parametrize("tz", ["UTC", LONDON, NEW_YORK])
@pytest.mark.parametrize(
    "spec", [cron("0 * * * *"), cron("30 1 * * *"), every(1234)], ids=lambda s: s.describe()
)
def test_due_fires_over_restarts_fire_every_time_once(spec: ScheduleSpec, tz: str) -> None:
    """A scheduler ticking at random moments (with downtimes) creates every run once with catchup."""
    rng = random.Random(f"{spec.describe()}|{tz}")
    start, end = utc(2026, 10, 20), utc(2026, 11, 5)
    anchor = utc(2026, 10, 20, 0, 7)
    next_due = first_fire(spec, tz, anchor, start)
    now, runs = start, []
    while now < end:
        now += timedelta(seconds=rng.choice([1, 59, 600, 3600, 5 * 3600, 3 * 86400]))
        fires, next_due = due_fires(spec, tz, next_due, now, True, anchor=anchor, limit=50)
        runs += fires
        assert all(f <= now for f in fires)
        assert not fires or next_due > fires[-1]
    while next_due <= now:  # drain what the last tick's limit left for the next tick
        fires, next_due = due_fires(spec, tz, next_due, now, True, anchor=anchor, limit=50)
        runs += fires
    assert runs == fires_between(spec, tz, anchor, now, anchor=anchor)


def test_due_fires_without_catchup_never_repeats_a_fire() -> None:
    spec, runs = cron("0 * * * *"), []
    next_due, now = utc(2026, 10, 24, 20), utc(2026, 10, 24, 20)
    for step in [0, 1, 3599, 1, 7200, 30, 86400, 1, 3600]:
        now += timedelta(seconds=step)
        fires, next_due = due_fires(spec, LONDON, next_due, now, False)
        assert len(fires) <= 1
        runs += fires
    assert runs == sorted(set(runs))


def test_due_fires_aligns_a_stale_next_due_to_the_schedule() -> None:
    # next_due stored for an old hourly schedule; the DAG is now daily: no run at 10:00, none twice.
    assert due_fires(cron("0 0 * * *"), "UTC", utc(2026, 1, 1, 10), utc(2026, 1, 1, 12), True) == (
        [],
        utc(2026, 1, 2),
    )
    assert due_fires(cron("0 0 * * *"), "UTC", utc(2026, 1, 1, 10), utc(2026, 1, 1, 12), False) == (
        [],
        utc(2026, 1, 2),
    )


# fires_between (backfill) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "tz", "span", "count", "ends"),
    [
        (cron("0 0 * * *"), "UTC", (utc(2026, 1, 1), utc(2026, 1, 7)), 7, (utc(2026, 1, 1), utc(2026, 1, 7))),
        (
            cron("0 0 * * *"),
            "UTC",
            (utc(2026, 1, 1, 0, 0, 1), utc(2026, 1, 7)),
            6,
            (utc(2026, 1, 2), utc(2026, 1, 7)),
        ),
        (
            HOURLY,
            LONDON,
            (utc(2026, 10, 24, 23), utc(2026, 10, 25, 23)),
            25,
            (utc(2026, 10, 24, 23), utc(2026, 10, 25, 23)),
        ),
        (cron("0 0 * * *"), "UTC", (utc(2026, 1, 1, 1), utc(2026, 1, 1, 2)), 0, None),
        (every(60), "UTC", (utc(2026, 1, 1), utc(2026, 1, 1, 1)), 61, (utc(2026, 1, 1), utc(2026, 1, 1, 1))),
    ],
)
def test_fires_between(
    spec: ScheduleSpec,
    tz: str,
    span: tuple[datetime, datetime],
    count: int,
    ends: tuple[datetime, datetime] | None,
) -> None:
    fires = fires_between(spec, tz, *span)
    assert len(fires) == count
    assert ((fires[0], fires[-1]) if fires else None) == ends
    assert fires == sorted(set(fires))


def test_fires_between_limit_and_bad_range() -> None:
    assert len(fires_between(every(1), "UTC", utc(2026, 1, 1), utc(2026, 1, 1, 0, 0, 9), limit=10)) == 10
    with pytest.raises(ScheduleError, match="more than 10 runs"):
        fires_between(every(1), "UTC", utc(2026, 1, 1), utc(2026, 1, 1, 0, 0, 10), limit=10)
    with pytest.raises(ScheduleError, match="is after end"):
        fires_between(cron("@daily"), "UTC", utc(2026, 2, 1), utc(2026, 1, 1))
