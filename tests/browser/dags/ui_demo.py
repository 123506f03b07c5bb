"""A DAG for the UI tests: a typed param, a mapped task and logs to read."""

from __future__ import annotations

from zonda import dag, task


@task
def greet(name: str) -> str:
    print(f"hello {name} from the UI test")
    return f"hello {name}"


@task
def items(times: int) -> list[int]:
    return list(range(times))


@task
def square(x: int) -> int:
    return x * x


@task
def total(values: list[int]) -> int:
    print(f"total of squares: {sum(values)}")
    return sum(values)


@dag(owner="ui-team", tags=["ui"])
def ui_demo(name: str, times: int = 3) -> None:
    """Greets, then sums squares over a mapped task."""
    greet(name)
    total(square.map(x=items(times)))
