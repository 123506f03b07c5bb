"""Every example DAG runs to success in-process, as `zonda run` would run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from zonda.sdk.discovery import dags_in, load_module
from zonda.testing import run_dag

EXAMPLES = sorted((Path(__file__).parents[2] / "zonda" / "examples").glob("*.py"))
PARAMS = {"onboarding": {"user_id": 42, "country": "FR"}}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(path: Path) -> None:
    module = load_module(path.read_text(), str(path), f"example_{path.stem}")
    for dag_id, dag in dags_in(module).items():
        record = run_dag(dag, PARAMS.get(dag_id, {}), key="example")
        assert record.state == "success", [(t.task_id, t.error) for t in record.tasks if t.error]


def test_retrain_keeps_the_best_of_every_candidate() -> None:
    path = next(p for p in EXAMPLES if p.stem == "retrain_model")
    dag = dags_in(load_module(path.read_text(), str(path), "example_retrain"))["retrain_model"]
    tasks = run_dag(dag).tasks
    assert sum(t.task_id == "evaluate" for t in tasks) == sum(t.task_id == "train" for t in tasks) == 4
