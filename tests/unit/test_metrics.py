"""Latency figures from hand-made times: percentiles, buckets, transitions (mapped tasks, retries, clears)."""

from __future__ import annotations

import math

import pytest

from zonda.core.metrics import (
    Attempt,
    InstanceTimes,
    RunTimes,
    Sample,
    Series,
    Window,
    choose_bucket,
    collect,
    figures,
    measured_upstreams,
    percentile,
    queue_waits,
    summarize,
    task_ends,
    transitions,
)
from zonda.core.spec import DagSpec, TaskSpec
from zonda.core.states import TriggerRule
from zonda.errors import ParamsError

T0 = 1_800_000_000.0
"""A round POSIX time (2027-01-15T08:00:00Z) so that bucket edges are easy to read."""


def ran(
    task_id: str, started: float, ended: float | None, map_index: int = -1, queued: float | None = None
) -> InstanceTimes:
    """An instance whose latest attempt was queued (by default when it started), started and ended."""
    return InstanceTimes(task_id, map_index, queued if queued is not None else started, started, ended)


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([5.0], 50, 5.0),
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([float(v) for v in range(1, 101)], 95, 95.05),
        ([float(v) for v in range(1, 101)], 99, 99.01),
        ([10.0, 20.0], 95, 19.5),
    ],
)
def test_percentile_interpolates_linearly_between_closest_ranks(
    values: list[float], p: float, expected: float
) -> None:
    assert percentile(values, p) == pytest.approx(expected)


def test_summary_of_no_values_is_empty_and_of_values_is_rounded() -> None:
    assert summarize([]).count == 0
    assert summarize([]).p50 is None
    s = summarize([3.0, 1.0, 2.0, 1 / 3])
    assert (s.count, s.p50, s.max) == (4, 1.5, 3.0)
    assert s.p95 == round(percentile(sorted([3.0, 1.0, 2.0, 1 / 3]), 95), 3)


@pytest.mark.parametrize(
    ("hours", "requested", "name", "count"),
    [
        (1, None, "1m", 60),
        (3, None, "1m", 180),
        (4, None, "5m", 48),
        (24, None, "1h", 24),
        (24 * 7, None, "1h", 168),
        (24 * 30, None, "1d", 31),  # T0 is 08:00, so 30 days touch 31 UTC days
        (12, "5m", "5m", 144),
    ],
)
def test_the_bucket_is_the_smallest_with_at_most_200(
    hours: int, requested: str | None, name: str, count: int
) -> None:
    chosen, window = choose_bucket(T0, T0 + hours * 3600, requested)
    assert (chosen, window.count) == (name, count)


def test_a_bucket_that_makes_too_many_or_a_backwards_window_is_refused() -> None:
    with pytest.raises(ParamsError, match="more than 200 buckets of 1m"):
        choose_bucket(T0, T0 + 7 * 86400, "1m")
    with pytest.raises(ParamsError, match="since must be before until"):
        choose_bucket(T0, T0, None)
    with pytest.raises(ParamsError, match="not one of 1m, 5m, 1h, 1d"):
        choose_bucket(T0, T0 + 60, "2m")
    with pytest.raises(ParamsError, match="larger bucket or a shorter window"):
        choose_bucket(T0, T0 + 400 * 86400, None)


def test_buckets_are_aligned_and_the_edges_are_cut_by_the_window() -> None:
    window = Window(T0 + 90, T0 + 3600 + 30, 300)
    assert window.origin == T0
    assert window.count == 13
    assert window.index(T0 + 89.999) is None
    assert window.index(T0 + 90) == 0
    assert window.index(T0 + 300) == 1
    assert window.index(T0 + 3600 + 29.9) == 12
    assert window.index(T0 + 3600 + 30) is None
    assert window.span(0) == 210
    assert window.span(5) == 300
    assert window.span(12) == 30


def test_transition_is_start_minus_the_latest_upstream_end() -> None:
    instances = [
        ran("a", T0, T0 + 1.0),
        ran("b", T0, T0 + 2.0),
        ran("c", T0 + 2.005, T0 + 3.0),
        ran("d", T0 + 3.010, T0 + 4.0),
    ]
    got = transitions(instances, {}, {"c": ("a", "b"), "d": ("c",)})
    assert [(s - T0, round(lat * 1000, 3)) for s, lat in got] == [
        (pytest.approx(2.005), 5.0),
        (pytest.approx(3.01), 10.0),
    ]


def test_a_mapped_task_waits_for_every_map_index_of_its_upstream() -> None:
    instances = [
        ran("extract", T0, T0 + 1.0),
        ran("train", T0 + 1.002, T0 + 1.5, map_index=0),
        ran("train", T0 + 1.003, T0 + 2.5, map_index=1),
        ran("train", T0 + 1.004, T0 + 1.7, map_index=2),
        ran("evaluate", T0 + 2.51, T0 + 2.6, map_index=0),
        ran("evaluate", T0 + 2.52, T0 + 2.7, map_index=1),
    ]
    assert task_ends(instances) == {"extract": T0 + 1.0, "train": T0 + 2.5, "evaluate": T0 + 2.7}
    got = transitions(instances, {}, {"train": ("extract",), "evaluate": ("train",)})
    assert [round(lat * 1000, 3) for _, lat in got] == [2.0, 3.0, 4.0, 10.0, 20.0]


def test_a_retried_task_counts_from_its_first_attempt_and_a_retried_upstream_from_its_final_end() -> None:
    instances = [
        InstanceTimes("a", -1, T0 + 5.0, T0 + 5.002, T0 + 6.0),
        InstanceTimes("b", -1, T0 + 9.0, T0 + 9.003, T0 + 10.0),
    ]
    earlier = {("a", -1): [Attempt(T0, T0 + 0.001)], ("b", -1): [Attempt(T0 + 6.001, T0 + 6.004)]}
    [(start, latency)] = transitions(instances, earlier, {"b": ("a",)})
    assert start == T0 + 6.004
    assert round(latency * 1000, 3) == 4.0
    waits = sorted(round(w * 1000, 3) for _, w in queue_waits(instances, earlier))
    assert waits == [1.0, 2.0, 3.0, 3.0]


def test_after_a_clear_the_attempts_of_the_earlier_round_are_not_the_start() -> None:
    instances = [
        ran("a", T0 + 100.0, T0 + 101.0),
        InstanceTimes("b", -1, T0 + 101.002, T0 + 101.007, T0 + 102.0),
    ]
    earlier = {("b", -1): [Attempt(T0 + 1.0, T0 + 1.001)]}
    [(start, latency)] = transitions(instances, earlier, {"b": ("a",)})
    assert (start, round(latency * 1000, 3)) == (T0 + 101.007, 7.0)


def test_attempts_of_instances_a_clear_removed_still_count_as_queue_waits() -> None:
    instances = [InstanceTimes("train", -1)]
    earlier = {("train", 0): [Attempt(T0, T0 + 0.002)], ("train", 1): [Attempt(T0, T0 + 0.004)]}
    assert sorted(round(w * 1000, 3) for _, w in queue_waits(instances, earlier)) == [2.0, 4.0]
    assert transitions(instances, earlier, {"train": ("extract",)}) == []


def test_no_transition_while_an_upstream_runs_or_before_the_task_starts() -> None:
    instances = [
        ran("a", T0, None),
        ran("b", T0, T0 + 1.0),
        InstanceTimes("c"),
        ran("d", T0 + 1.5, None),
    ]
    assert transitions(instances, {}, {"c": ("b",), "d": ("a", "b")}) == []


def test_tasks_that_may_start_early_are_not_measured() -> None:
    spec = DagSpec(
        dag_id="t/d",
        tasks=(
            TaskSpec("a"),
            TaskSpec("b", upstream=("a",)),
            TaskSpec("c", upstream=("a",), trigger_rule=TriggerRule.ONE_SUCCESS),
            TaskSpec("d", upstream=("b",), trigger_rule=TriggerRule.ALL_DONE),
            TaskSpec("e", upstream=("b",), trigger_rule=TriggerRule.ALWAYS),
        ),
    )
    assert measured_upstreams(spec) == {"b": ("a",), "d": ("b",)}


def _run(
    run_id: str, created: float, ended: float | None, failed: bool = False, started: float | None = None
) -> RunTimes:
    instances = (
        ran("a", created + 0.010, created + 1.0, queued=created + 0.004),
        ran("b", created + 1.003, created + 2.0, queued=created + 1.001),
    )
    return RunTimes(run_id, "team-a", "team-a/etl", created, started, ended, failed, instances)


def test_collect_places_values_by_when_they_happened_and_figures_reduce_them() -> None:
    window = Window(T0, T0 + 3600, 60)
    series = Series()
    upstream = {"b": ("a",)}
    collect(_run("r1", T0 + 10, T0 + 12.5, started=T0 + 10.5), upstream, window, series)
    collect(_run("r2", T0 + 130, T0 + 134.0, failed=True, started=T0 + 131), upstream, window, series)
    collect(_run("r3", T0 + 3599, None), upstream, window, series)
    collect(_run("r4", T0 - 30, T0 - 20), upstream, window, series)
    total = figures(series.total(), 3600)
    assert (total.transition_ms.count, total.transition_ms.p50, total.transition_ms.max) == (2, 3.0, 3.0)
    assert (total.queue_wait_ms.count, total.queue_wait_ms.p50, total.queue_wait_ms.max) == (5, 6.0, 6.0)
    assert (total.run_duration_ms.count, total.run_duration_ms.p50, total.run_duration_ms.max) == (
        2,
        3250.0,
        4000.0,
    )
    assert total.run_execution_ms.max == 3000.0
    assert (total.runs_ended, total.runs_failed, total.failure_rate) == (2, 1, 0.5)
    assert total.tasks_ended == 4
    assert total.tasks_per_minute == 0.066667
    assert total.runs_per_hour == 2.0
    buckets = series.buckets()
    assert sorted(buckets) == [0, 2, 59]
    assert buckets[0].run_duration == [pytest.approx(2500.0, abs=0.001)]
    assert (buckets[2].runs_ended, buckets[2].runs_failed) == (1, 1)
    assert buckets[59].queue_wait == [pytest.approx(6.0, abs=0.001)]
    assert buckets[59].tasks_ended == 0


def test_figures_of_an_empty_sample_have_no_rate_and_no_percentiles() -> None:
    empty = figures(Sample(), 60)
    assert empty.failure_rate is None
    assert empty.transition_ms.p99 is None
    assert (empty.tasks_per_minute, empty.runs_per_hour) == (0.0, 0.0)
    assert not math.isnan(empty.tasks_per_minute)
