"""Concurrency limits: max_active_tasks per DAG and pool slots. Counts in memory, no queries."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from zonda.core.spec import TaskSpec


@dataclass
class Limits:
    """What is running now, by DAG and by pool, and the pools' sizes."""

    pool_sizes: dict[str, int] = field(default_factory=dict)
    by_dag: Counter[str] = field(default_factory=Counter)
    by_pool: Counter[str] = field(default_factory=Counter)

    def blocker(self, dag_id: str, max_active_tasks: int, spec: TaskSpec) -> str | None:
        """Why this task cannot start now (None if it can); 'unknown pool' is final, the rest wait."""
        if self.by_dag[dag_id] >= max_active_tasks:
            return "max_active_tasks"
        if spec.pool is None:
            return None
        if spec.pool not in self.pool_sizes:
            return "unknown pool"
        if self.by_pool[spec.pool] + spec.pool_slots > self.pool_sizes[spec.pool]:
            return "pool full"
        return None

    def take(self, dag_id: str, spec: TaskSpec) -> None:
        self.by_dag[dag_id] += 1
        if spec.pool:
            self.by_pool[spec.pool] += spec.pool_slots

    def release(self, dag_id: str, spec: TaskSpec) -> None:
        self.by_dag[dag_id] -= 1
        if spec.pool:
            self.by_pool[spec.pool] -= spec.pool_slots
