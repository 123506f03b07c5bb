"""Tenant quotas: how many tasks a tenant may run and how many runs it may have active at once.

Pure decisions over counts the scheduler keeps; a limit of None means unlimited. A quota never
stops what already runs: lowering it below the current count only makes new work wait.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Quota:
    """A tenant's limits, as set by a platform superuser (None: no limit)."""

    max_running_tasks: int | None = None
    max_active_runs: int | None = None

    @property
    def bounded(self) -> bool:
        """Whether any limit is set (the tenant's counts must then be exact across schedulers)."""
        return self.max_running_tasks is not None or self.max_active_runs is not None


UNLIMITED = Quota()


def has_room(count: int, limit: int | None) -> bool:
    """Whether one more may start when `count` already do and at most `limit` may."""
    return limit is None or count < limit


def admit(
    candidates: Iterable[tuple[K, Sequence[Hashable]]],
    counts: Mapping[Hashable, int],
    limits: Mapping[Hashable, int | None],
) -> list[K]:
    """The candidates, in the order given, that may start now.

    Each candidate names the buckets it counts in (e.g. its tenant and its DAG); it is admitted when
    every one of them has room, and then takes one place in each. `counts` is what each bucket
    already holds; a bucket missing from `limits` is unlimited.
    """
    taken: Counter[Hashable] = Counter()
    admitted: list[K] = []
    for item, buckets in candidates:
        if all(has_room(counts.get(b, 0) + taken[b], limits.get(b)) for b in buckets):
            taken.update(buckets)
            admitted.append(item)
    return admitted


def full_tenants(counts: Mapping[str, int], limits: Mapping[str, int | None]) -> frozenset[str]:
    """The tenants that may start nothing more now."""
    return frozenset(t for t, limit in limits.items() if not has_room(counts.get(t, 0), limit))
