"""What the scheduler writes at once and what it gathers: a real scheduler and local workers, SQLite and
PostgreSQL, with `scheduler_write_window` set far beyond the test's length.

Outcomes that nothing waits for wait for the window, so many share one transaction. Work to
dispatch, and a run's start and end, are written at once: the DAG below still runs in seconds,
and a client sees its run end as soon as it ends. (The scheduler's heartbeat, every
`heartbeat_interval`, also writes what has gathered; the test sets it as long as the window.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.in_process import Zonda, in_process_zonda
from zonda.core.states import RunState
from zonda.services import runs

pytestmark = pytest.mark.slow

WINDOW_S = 60.0

SOURCE = """
import time

from zonda import dag, task


@task
def quick() -> int:
    return 1


@task
def slow() -> int:
    time.sleep(1.5)
    return 2


@task
def after(x: int) -> int:
    return x + 1


@dag
def lanes() -> None:
    quick()
    after(slow())
"""


@pytest.fixture
def zonda(db_url: str, tmp_path: Path) -> Iterator[Zonda]:
    # The scheduler's heartbeat writes whatever has gathered: keep it out of the test's few seconds.
    with in_process_zonda(
        db_url, tmp_path, scheduler_write_window=WINDOW_S, heartbeat_interval=WINDOW_S
    ) as z:
        yield z


def test_outcomes_wait_for_the_window_but_dispatches_and_run_ends_are_written_at_once(zonda: Zonda) -> None:
    zonda.tenant("team-a", SOURCE)
    zonda.start_scheduler(workers=2)
    run_id = zonda.trigger("team-a/lanes")
    began = time.monotonic()

    def state_of(task_id: str) -> str:
        return next(t.state for t in runs.get_run(zonda.svc, run_id).tasks if t.task_id == task_id)

    zonda.wait_until(lambda: runs.get_run(zonda.svc, run_id).state == RunState.RUNNING.value, timeout=10)
    time.sleep(0.8)  # `quick` ended long ago; `slow` still runs
    assert state_of("quick") != "success", "an outcome nothing waits for was written before the window"

    (record,) = zonda.wait([run_id], timeout=20)
    assert time.monotonic() - began < WINDOW_S / 2, "the run's end waited for the write window"
    assert {t.task_id: t.state for t in record.tasks} == {
        "quick": "success",
        "slow": "success",
        "after": "success",
    }
