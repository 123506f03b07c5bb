"""W2 `fanout_1000`: `start` -> 1000 mapped instances of `work` -> `join` (see BENCHMARKS.md)."""

from __future__ import annotations

from typing import Any

from zonda import dag, task

FANOUT = 1000


@task
def start() -> list[int]:
    """The 1000 elements to fan out over; known only at run time."""
    return list(range(FANOUT))


@task
def work(item: int) -> dict[str, Any]:
    """One mapped instance: trivial work, a small dict."""
    return {"item": item, "square": item * item}


@task
def join(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Collect the 1000 results."""
    return {"count": len(results), "total": sum(r["square"] for r in results)}


@dag(max_active_runs=4, max_active_tasks=1024, tags=["benchmark"])
def fanout_1000() -> None:
    """W2: one start, 1000 independent mapped tasks, one join."""
    join(work.map(item=start()))
