"""The W1 shape (8 stages of 5; each task needs two of the previous stage), for zonda's scale-out tests."""

from __future__ import annotations

import os
import time
from pathlib import Path

import zonda
from zonda import dag, task

MARKS = Path(os.environ.get("ZONDA_TEST_MARKS", "/tmp/zonda-test-marks"))


@task(retries=2, retry_delay=0.2)
def step(*upstream: dict[str, int], stage: int, lane: int, pause: float) -> dict[str, int]:
    time.sleep(pause)
    ctx = zonda.context()
    MARKS.mkdir(parents=True, exist_ok=True)
    with (MARKS / f"{ctx.run_id}.{ctx.task_id}").open("a") as f:
        f.write(f"{ctx.try_number}\n")
    return {"stage": stage, "lane": lane, "hops": 1 + sum(u["hops"] for u in upstream)}


@dag(max_active_runs=32)
def w1_shape(user_id: int = 0, pause: float = 0.0) -> None:
    previous = [step.with_options(task_id=f"s0_{i}")(stage=0, lane=i, pause=pause) for i in range(5)]
    for k in range(1, 8):
        previous = [
            step.with_options(task_id=f"s{k}_{i}")(
                previous[i], previous[(i + 1) % 5], stage=k, lane=i, pause=pause
            )
            for i in range(5)
        ]
