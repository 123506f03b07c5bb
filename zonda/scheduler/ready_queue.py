"""The order in which ready task instances get a worker: priority, then runs already under way.

Each tenant has its own heap, and a heap of the tenants' heads picks the next instance overall,
so the order is the same as with one heap. A tenant at its quota is parked: its instances stay
queued but are not looked at until one of its tasks ends, so a tenant with thousands of waiting
tasks costs nothing per dispatch and never delays another tenant's tasks.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from zonda.core.run_graph import TIKey

SortKey = tuple[int, int, int, int]


@dataclass(order=True, slots=True)
class _Entry:
    sort_key: SortKey
    run_id: str = field(compare=False)
    ti_key: TIKey = field(compare=False)


class ReadyQueue:
    """Ready instances by tenant: higher `priority` first, then older runs, then DAG order.

    Favouring runs that started first finishes runs sooner under load instead of interleaving all.
    """

    def __init__(self) -> None:
        self._heaps: dict[str, list[_Entry]] = {}
        self._heads: list[tuple[SortKey, str]] = []
        self._listed: dict[str, SortKey] = {}
        self._members: dict[str, set[TIKey]] = {}
        self._size = 0
        self._parked: set[str] = set()

    def push(
        self, run_id: str, ti_key: TIKey, priority: int, run_seq: int, topo_index: int, tenant: str = ""
    ) -> None:
        members = self._members.setdefault(run_id, set())
        if ti_key in members:
            return
        members.add(ti_key)
        self._size += 1
        heap = self._heaps.setdefault(tenant, [])
        heapq.heappush(heap, _Entry((-priority, run_seq, topo_index, ti_key[1]), run_id, ti_key))
        self._list(tenant)

    def pop(self) -> tuple[str, TIKey] | None:
        """The first ready instance of a tenant that is not parked (None if there is none)."""
        while self._heads:
            key, tenant = heapq.heappop(self._heads)
            if self._listed.get(tenant) != key:
                continue
            del self._listed[tenant]
            entry = heapq.heappop(self._heaps[tenant])
            self._list(tenant)
            if self._take(entry):
                return entry.run_id, entry.ti_key
        return None

    def park(self, tenant: str) -> None:
        """Stop handing out the tenant's instances (it is at its quota) until `unpark`."""
        self._parked.add(tenant)
        self._listed.pop(tenant, None)

    def unpark(self, tenant: str) -> None:
        if tenant in self._parked:
            self._parked.discard(tenant)
            self._list(tenant)

    def unpark_all(self) -> None:
        """Look at every tenant again (their quotas changed)."""
        for tenant in list(self._parked):
            self.unpark(tenant)

    def discard_run(self, run_id: str) -> None:
        """Forget a run's instances (their heap entries are skipped when they come up)."""
        self._size -= len(self._members.pop(run_id, ()))

    def __len__(self) -> int:
        return self._size

    def _has(self, entry: _Entry) -> bool:
        return entry.ti_key in self._members.get(entry.run_id, ())

    def _take(self, entry: _Entry) -> bool:
        """Remove the entry's instance from the members; False if it was not one (any more)."""
        members = self._members.get(entry.run_id)
        if members is None or entry.ti_key not in members:
            return False
        members.discard(entry.ti_key)
        if not members:
            del self._members[entry.run_id]
        self._size -= 1
        return True

    def _list(self, tenant: str) -> None:
        """Make the tenant's current head (after dropping forgotten entries) the one in `_heads`."""
        heap = self._heaps.get(tenant)
        while heap and not self._has(heap[0]):
            heapq.heappop(heap)
        if not heap:
            self._heaps.pop(tenant, None)
            self._listed.pop(tenant, None)
            return
        if tenant in self._parked or self._listed.get(tenant) == heap[0].sort_key:
            return
        self._listed[tenant] = heap[0].sort_key
        heapq.heappush(self._heads, (heap[0].sort_key, tenant))
