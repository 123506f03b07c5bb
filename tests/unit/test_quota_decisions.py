"""Tenant quotas: the pure decision of which ready runs or tasks may start, as a table."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import pytest

from zonda.core.quotas import UNLIMITED, Quota, admit, full_tenants, has_room


@pytest.mark.parametrize(
    ("count", "limit", "expected"),
    [
        (0, None, True),
        (10_000, None, True),
        (0, 0, False),
        (0, 1, True),
        (1, 1, False),
        (1, 2, True),
        (3, 2, False),
    ],
)
def test_has_room(count: int, limit: int | None, expected: bool) -> None:
    assert has_room(count, limit) is expected


Candidates = Sequence[tuple[str, Sequence[Hashable]]]


@pytest.mark.parametrize(
    ("candidates", "counts", "limits", "expected"),
    [
        pytest.param([("a1", ["a"]), ("a2", ["a"])], {}, {}, ["a1", "a2"], id="no limits: all start"),
        pytest.param(
            [("a1", ["a"]), ("a2", ["a"]), ("a3", ["a"])], {}, {"a": 2}, ["a1", "a2"], id="up to the limit"
        ),
        pytest.param([("a1", ["a"]), ("a2", ["a"])], {"a": 1}, {"a": 2}, ["a1"], id="running ones count"),
        pytest.param([("a1", ["a"])], {"a": 3}, {"a": 2}, [], id="over the limit (lowered): none"),
        pytest.param(
            [("a1", ["a"]), ("b1", ["b"]), ("a2", ["a"]), ("b2", ["b"])],
            {"a": 2},
            {"a": 2},
            ["b1", "b2"],
            id="a full tenant does not hold the others back",
        ),
        pytest.param(
            [("a1", ["a"]), ("b1", ["b"]), ("a2", ["a"]), ("b2", ["b"])],
            {},
            {"a": 1, "b": 1},
            ["a1", "b1"],
            id="each tenant its own limit",
        ),
        pytest.param(
            [("r1", ["a", "a/etl"]), ("r2", ["a", "a/etl"]), ("r3", ["a", "a/ml"])],
            {},
            {"a": 2, "a/etl": 1},
            ["r1", "r3"],
            id="every bucket must have room: tenant and DAG",
        ),
        pytest.param(
            [("r1", ["a", "a/etl"]), ("r2", ["a", "a/ml"])],
            {"a/etl": 1},
            {"a": 1, "a/etl": 1},
            ["r2"],
            id="a candidate refused by one bucket takes no room in the others",
        ),
        pytest.param([("x", ["a"])], {}, {"a": 0}, [], id="zero: nothing starts"),
    ],
)
def test_admit(
    candidates: Candidates,
    counts: Mapping[Hashable, int],
    limits: Mapping[Hashable, int | None],
    expected: list[str],
) -> None:
    assert admit(candidates, counts, limits) == expected


def test_full_tenants_and_quota_bounds() -> None:
    limits = {"a": 2, "b": None, "c": 1}
    assert full_tenants({"a": 2, "b": 50, "c": 0}, limits) == {"a"}
    assert full_tenants({}, limits) == frozenset()
    assert not UNLIMITED.bounded
    assert Quota(max_running_tasks=3).bounded and Quota(max_active_runs=1).bounded
