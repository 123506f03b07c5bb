"""DAGs that exercise the scheduler's semantics with real worker processes (zonda tests)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import zonda
from zonda import BashTask, dag, every, task

MARKS = Path(os.environ.get("ZONDA_TEST_MARKS", "/tmp/zonda-test-marks"))


def mark(name: str) -> None:
    """Record a side effect: one line per successful execution, read back by the tests."""
    MARKS.mkdir(parents=True, exist_ok=True)
    ctx = zonda.context()
    with (MARKS / f"{ctx.run_id}.{name}").open("a") as f:
        f.write(f"{ctx.try_number}\n")


@task(retries=2, retry_delay=0.2)
def flaky() -> str:
    if zonda.context().try_number == 1:
        raise RuntimeError("first attempt fails on purpose")
    print("second attempt works")
    return "ok"


@dag
def flaky_once() -> None:
    flaky()


@task(timeout=0.5, retries=0)
def sleepy() -> None:
    time.sleep(30)


@dag
def timeouts() -> None:
    sleepy()


@task(retries=1)
def die_first() -> str:
    if zonda.context().try_number == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


@dag
def crashy() -> None:
    die_first()


@task
def boom() -> None:
    raise ValueError("boom")


@task
def never() -> str:
    return "never"


@task(trigger_rule="one_failed")
def on_failure() -> str:
    return "alerted"


@task(trigger_rule="all_done")
def report() -> str:
    return "reported"


@dag
def rules() -> None:
    failed = boom()
    never(failed)
    failed >> on_failure()
    failed >> report()


@task
def grid(n: int) -> list[int]:
    return list(range(n))


@task
def square(x: int) -> int:
    return x * x


@task
def total(values: list[int]) -> int:
    return sum(values)


@dag
def mapped(n: int = 5) -> None:
    total(square.map(x=grid(n)))


@task
def leak() -> str:
    token = zonda.secret("API_TOKEN")
    print(f"calling the API with {token}")
    return "done"


@dag
def secrets() -> None:
    leak()


def _stage_task(name: str) -> zonda.Task:
    @task(task_id=name)
    def step(*_: object) -> str:
        time.sleep(0.15)
        mark(name)
        return name

    return step


@dag(max_active_runs=8)
def slow_chain(user_id: int = 0) -> None:
    previous: list[zonda.TaskRef] = []
    for stage in range(4):
        current = [_stage_task(f"s{stage}_{i}")(*previous) for i in range(3)]
        previous = current


@task
def hold() -> None:
    time.sleep(0.3)


@dag(max_active_runs=1)
def one_at_a_time() -> None:
    hold()


@task(pool="tiny")
def pooled(x: int) -> int:
    time.sleep(0.2)
    return x


@dag
def pools() -> None:
    pooled.map(x=[1, 2, 3])


@task(pool="missing")
def nowhere() -> None:
    return None


@dag
def unknown_pool() -> None:
    nowhere()


@dag
def bash_env() -> None:
    BashTask(
        "show",
        command='echo "FOO=$FOO key=$ZONDA_KEY"; echo "python=$(command -v python)"; echo last-line',
        env={"FOO": "bar"},
        venv=os.environ.get("ZONDA_TEST_VENV"),
    )


@task
def tick() -> str:
    return "tick"


@dag(schedule=every("1s"), catchup=True)
def ticker() -> None:
    tick()


@task(retries=1)
def long_first_try() -> str:
    mark("long_first_try")
    if zonda.context().try_number == 1:
        time.sleep(60)
    return "second try"


@dag
def worker_loss() -> None:
    long_first_try()


@task
def long_sleep() -> None:
    mark("long_sleep_started")
    time.sleep(60)
    mark("long_sleep_finished")


@task(trigger_rule="all_done")
def after_sleep() -> None:
    mark("after_sleep")


@dag
def cancellable() -> None:
    long_sleep() >> after_sleep()


@task(queue="slow")
def first_in_line(pause: float) -> None:
    mark("first_in_line")
    time.sleep(pause)


@task(queue="slow")
def second_in_line(pause: float) -> None:
    mark("second_in_line")
    time.sleep(pause)


@dag
def waits_on_broker(pause: float = 2.0) -> None:
    first_in_line(pause)
    second_in_line(pause)
