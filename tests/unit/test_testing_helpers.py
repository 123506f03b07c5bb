"""`zonda.testing`: call tasks with a context, run a DAG in-process."""

from __future__ import annotations

import zonda
from zonda import dag, task
from zonda.testing import run_dag, task_context


@task
def greet(name: str) -> str:
    ctx = zonda.context()
    return f"hello {name} from {ctx.task_id} key={ctx.key} token={zonda.secret('TOKEN')}"


def test_task_context_feeds_context_and_secrets() -> None:
    with task_context(task_id="greet", key="user-1", secrets={"TOKEN": "abc"}):
        assert greet("ann") == "hello ann from greet key=user-1 token=abc"


def test_run_dag_returns_the_run_record() -> None:
    @dag
    def hello(name: str = "bob") -> None:
        greet(name)

    record = run_dag(hello, key="user-2")
    assert record.state == "failed"
    assert "secret 'TOKEN' is not set" in (record.tasks[0].error or "")
