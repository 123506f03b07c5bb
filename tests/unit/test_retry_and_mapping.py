"""Retry delays (fixed and exponential) and mapped-instance element selection."""

from __future__ import annotations

import pytest

from zonda.core.mapping import element_indices, map_count
from zonda.core.retry import max_tries, retry_delay
from zonda.core.spec import TaskSpec


def test_fixed_delay() -> None:
    spec = TaskSpec("t", retries=3, retry_delay=5.0)
    assert [retry_delay(spec, n) for n in (1, 2, 3)] == [5.0, 5.0, 5.0]
    assert max_tries(spec) == 4


def test_exponential_backoff_is_capped() -> None:
    spec = TaskSpec("t", retries=10, retry_delay=2.0, retry_exponential_backoff=True, max_retry_delay=30.0)
    assert [retry_delay(spec, n) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_cleared_task_gets_its_retries_again() -> None:
    assert max_tries(TaskSpec("t", retries=2), tries_so_far=3) == 6


@pytest.mark.parametrize(("lengths", "count"), [([3], 3), ([2, 3], 6), ([0, 5], 0), ([], 0)])
def test_map_count(lengths: list[int], count: int) -> None:
    assert map_count(lengths) == count


def test_element_indices_cover_the_cartesian_product_once() -> None:
    lengths = [2, 3, 4]
    seen = {element_indices(i, lengths) for i in range(map_count(lengths))}
    assert len(seen) == 24
    assert element_indices(0, lengths) == (0, 0, 0)
    assert element_indices(1, lengths) == (0, 0, 1)
    assert element_indices(23, lengths) == (1, 2, 3)
