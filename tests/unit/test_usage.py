"""Usage accounting: attempts split over UTC days, CPU/GPU-seconds from declared resources, `--since` parsing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from zonda.core.usage import Charge, DayUsage, Usage, day_usage, parse_since, rollup, seconds_per_day, total
from zonda.errors import ParamsError


def at(day: int, hour: int, minute: int = 0, tz: timezone = UTC) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=tz)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (at(1, 10), at(1, 11), [(date(2026, 3, 1), 3600.0)]),
        (at(1, 23, 30), at(2, 0, 15), [(date(2026, 3, 1), 1800.0), (date(2026, 3, 2), 900.0)]),
        (
            at(1, 23),
            at(3, 1),
            [(date(2026, 3, 1), 3600.0), (date(2026, 3, 2), 86400.0), (date(2026, 3, 3), 3600.0)],
        ),
        (at(2, 0), at(3, 0), [(date(2026, 3, 2), 86400.0)]),
        (at(1, 10), at(1, 10), []),
        (at(1, 11), at(1, 10), []),
    ],
    ids=["within-a-day", "over-midnight", "three-days", "whole-day", "empty", "reversed"],
)
def test_seconds_are_split_at_utc_midnight(
    start: datetime, end: datetime, expected: list[tuple[date, float]]
) -> None:
    assert seconds_per_day(start, end) == expected


def test_days_are_utc_days_whatever_the_zone_of_the_times() -> None:
    plus_two = timezone(timedelta(hours=2))
    # 01:30 to 02:30 at +02:00 is 23:30 to 00:30 UTC: half an hour on each UTC day.
    parts = seconds_per_day(at(2, 1, 30, plus_two), at(2, 2, 30, plus_two))
    assert parts == [(date(2026, 3, 1), 1800.0), (date(2026, 3, 2), 1800.0)]


def test_cpu_and_gpu_seconds_are_task_seconds_times_declared_resources() -> None:
    usage = day_usage(Charge("team-a", at(1, 10), at(1, 10, 30), cpu=4, gpu=2))
    assert usage == {
        date(2026, 3, 1): Usage(attempts=1, task_seconds=1800, cpu_seconds=7200, gpu_seconds=3600)
    }


def test_an_attempt_over_midnight_is_counted_once_on_the_day_it_ended() -> None:
    usage = day_usage(Charge("team-a", at(1, 23), at(2, 1), cpu=1, gpu=1))
    assert usage == {
        date(2026, 3, 1): Usage(attempts=0, task_seconds=3600, cpu_seconds=3600, gpu_seconds=3600),
        date(2026, 3, 2): Usage(attempts=1, task_seconds=3600, cpu_seconds=3600, gpu_seconds=3600),
    }


def test_an_attempt_that_never_started_costs_nothing_and_one_without_an_end_is_not_counted() -> None:
    assert day_usage(Charge("team-a", None, at(1, 10))) == {date(2026, 3, 1): Usage(attempts=1)}
    assert day_usage(Charge("team-a", at(1, 10), None)) == {}


def test_rollup_sums_per_tenant_and_day_sorted() -> None:
    charges = [
        Charge("team-b", at(1, 10), at(1, 11)),
        Charge("team-a", at(1, 23), at(2, 1), gpu=1),
        Charge("team-a", at(1, 9), at(1, 9, 30), cpu=2),
    ]
    assert rollup(charges) == [
        DayUsage("team-a", date(2026, 3, 1), Usage(1, 5400, 7200, 3600)),
        DayUsage("team-a", date(2026, 3, 2), Usage(1, 3600, 3600, 3600)),
        DayUsage("team-b", date(2026, 3, 1), Usage(1, 3600, 3600, 0)),
    ]
    assert total(rollup(charges)) == Usage(3, 12600, 14400, 7200)
    assert total([]) == Usage()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", at(1, 12) - timedelta(days=30)),
        ("12h", at(1, 0)),
        (" 45m ", at(1, 11, 15)),
        ("2026-02-01", datetime(2026, 2, 1, tzinfo=UTC)),
        ("2026-02-01T06:00+02:00", datetime(2026, 2, 1, 4, tzinfo=UTC)),
    ],
)
def test_since_is_relative_to_now_or_an_iso_time(text: str, expected: datetime) -> None:
    assert parse_since(text, at(1, 12)) == expected


@pytest.mark.parametrize("text", ["yesterday", "30 days", "-3d", "2026-13-01"])
def test_a_bad_since_says_which_forms_work(text: str) -> None:
    with pytest.raises(ParamsError, match="30d, 12h, 45m"):
        parse_since(text, at(1, 12))
