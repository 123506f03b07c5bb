"""W1/W1a `onboarding_40x20`: 40 tasks in 8 stages of 5 (see BENCHMARKS.md).

Task `s{k}_{i}` receives the return values of `s{k-1}_{i}` and `s{k-1}_{(i+1)%5}` (data
dependencies, so artifact passing is on the measured path) and returns a small dict.

`onboarding_40x20_r3` is the same graph with at most `RUNS_AT_ONCE` runs under way (W1r3): what a
DAG's `max_active_runs` does to W1 on a fleet that is busy with it.
"""

from __future__ import annotations

from typing import Any

from zonda import dag, task

STAGES = 8
WIDTH = 5
RUNS_AT_ONCE = 3


@task
def first(user_id: int, lane: int) -> dict[str, Any]:
    """Stage 0: start the customer's lane."""
    return {"user_id": user_id, "lane": lane, "stage": 0, "hops": 1}


@task
def step(left: dict[str, Any], right: dict[str, Any], stage: int, lane: int) -> dict[str, Any]:
    """Stages 1..7: combine the two upstream results into a small dict."""
    return {"user_id": left["user_id"], "lane": lane, "stage": stage, "hops": left["hops"] + right["hops"]}


def lanes(user_id: int) -> None:
    """s{k}_{i} <- s{k-1}_{i}, s{k-1}_{(i+1)%5}, for k = 1..7."""
    previous = [first.with_options(task_id=f"s0_{i}")(user_id, i) for i in range(WIDTH)]
    for k in range(1, STAGES):
        previous = [
            step.with_options(task_id=f"s{k}_{i}")(previous[i], previous[(i + 1) % WIDTH], k, i)
            for i in range(WIDTH)
        ]


@dag(max_active_runs=64, max_active_tasks=64, tags=["benchmark"])
def onboarding_40x20(user_id: int) -> None:
    """The W1 onboarding graph, every run under way at once."""
    lanes(user_id)


@dag(max_active_runs=RUNS_AT_ONCE, max_active_tasks=64, tags=["benchmark"])
def onboarding_40x20_r3(user_id: int) -> None:
    """The W1 onboarding graph, at most three runs under way; the others wait queued (W1r3)."""
    lanes(user_id)
