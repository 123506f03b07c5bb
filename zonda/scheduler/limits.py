"""Concurrency limits: tenant quotas, max_active_tasks per DAG and tenant pools' slots.

Counts live in memory and change by one on each event (a task taken or released, a run held or
dropped), so checking a limit costs no query. Pools are keyed by (tenant, name): two tenants'
pools of the same name are different pools.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from zonda.core.quotas import UNLIMITED, Quota, full_tenants, has_room
from zonda.core.spec import TaskSpec

PoolKey = tuple[str, str]
"""(tenant, pool name)."""

TENANT_QUOTA = "tenant quota"
UNKNOWN_POOL = "unknown pool"


@dataclass
class Limits:
    """What is running now, by tenant, DAG and pool, and the quotas and pool sizes to respect."""

    pool_sizes: dict[PoolKey, int] = field(default_factory=dict)
    quotas: dict[str, Quota] = field(default_factory=dict)
    by_tenant: Counter[str] = field(default_factory=Counter)
    by_dag: Counter[str] = field(default_factory=Counter)
    by_pool: Counter[PoolKey] = field(default_factory=Counter)
    runs_by_tenant: Counter[str] = field(default_factory=Counter)
    pooled_tenants: frozenset[str] = frozenset()

    def set_pools(self, sizes: dict[PoolKey, int]) -> None:
        """Replace the pools' sizes (read from the DB when they change)."""
        self.pool_sizes = sizes
        self.pooled_tenants = frozenset(tenant for tenant, _ in sizes)

    def quota(self, tenant: str) -> Quota:
        return self.quotas.get(tenant, UNLIMITED)

    def bounded(self, tenant: str) -> bool:
        """Whether the tenant's counts must be exact across schedulers (a quota or a pool applies)."""
        return self.quota(tenant).bounded or tenant in self.pooled_tenants

    def blocker(self, tenant: str, dag_id: str, max_active_tasks: int, spec: TaskSpec) -> str | None:
        """Why this task cannot start now (None if it can).

        TENANT_QUOTA holds every task of the tenant until one of its tasks ends; UNKNOWN_POOL is
        final; the rest wait for a task of the same DAG or pool.
        """
        if not has_room(self.by_tenant[tenant], self.quota(tenant).max_running_tasks):
            return TENANT_QUOTA
        if self.by_dag[dag_id] >= max_active_tasks:
            return "max_active_tasks"
        if spec.pool is None:
            return None
        pool = (tenant, spec.pool)
        if pool not in self.pool_sizes:
            return UNKNOWN_POOL
        if self.by_pool[pool] + spec.pool_slots > self.pool_sizes[pool]:
            return "pool full"
        return None

    def take(self, tenant: str, dag_id: str, spec: TaskSpec) -> None:
        self.by_tenant[tenant] += 1
        self.by_dag[dag_id] += 1
        if spec.pool:
            self.by_pool[(tenant, spec.pool)] += spec.pool_slots

    def release(self, tenant: str, dag_id: str, spec: TaskSpec) -> None:
        self.by_tenant[tenant] -= 1
        self.by_dag[dag_id] -= 1
        if spec.pool:
            self.by_pool[(tenant, spec.pool)] -= spec.pool_slots

    def full_for_runs(self) -> frozenset[str]:
        """Tenants at their max_active_runs: their queued runs stay queued."""
        return full_tenants(self.runs_by_tenant, self.run_limits())

    def run_limits(self) -> dict[str, int | None]:
        return {tenant: q.max_active_runs for tenant, q in self.quotas.items()}
