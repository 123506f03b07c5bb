"""W3 `one_task`: a single task, triggered through the REST API (see BENCHMARKS.md)."""

from __future__ import annotations

from typing import Any

from zonda import dag, task


@task
def ping(n: int) -> dict[str, Any]:
    """Trivial work: a small dict."""
    return {"pong": n}


@dag(max_active_runs=64, tags=["benchmark"])
def one_task(n: int = 0) -> None:
    """W3: one task."""
    ping(n)
