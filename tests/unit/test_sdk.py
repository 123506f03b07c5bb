"""Authoring: tasks stay plain functions, DAG functions build graphs, specs round-trip losslessly."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict

import pytest

import zonda
from zonda import BashTask, dag, every, task
from zonda.core.spec import DagSpec
from zonda.core.states import TriggerRule
from zonda.errors import DagCycleError, DagDefinitionError, ParamsError, ScheduleError
from zonda.sdk.serialize import dag_to_spec


@task(retries=3, retry_delay="30s", timeout="5m", priority=5, pool="gpu", trigger_rule="all_done")
def double(x: int) -> int:
    return 2 * x


@task
def total(values: list[int]) -> int:
    return sum(values)


@task(cpu=2, gpu=1, memory="4Gi")
def train(values: list[int]) -> int:
    return len(values)


def test_a_task_called_outside_a_dag_is_a_plain_function() -> None:
    assert double(21) == 42
    assert double.fn(1) == 2


def test_return_values_become_data_dependencies() -> None:
    @dag
    def pipeline(n: int = 3):
        total(double.map(x=[1, 2, n]))

    spec = dag_to_spec(pipeline)
    assert [t.task_id for t in spec.tasks] == ["double", "total"]
    assert spec.task("total").data_upstream == ("double",)
    assert spec.task("double").map_sources[0].kind == "literal"


def test_options_are_serialized() -> None:
    @dag
    def opts():
        double(1)

    t = dag_to_spec(opts).task("double")
    assert (t.retries, t.retry_delay, t.timeout, t.priority, t.pool) == (3, 30.0, 300.0, 5, "gpu")
    assert t.trigger_rule is TriggerRule.ALL_DONE


def test_order_dependencies_and_repeated_task_ids() -> None:
    @dag
    def ordered():
        a = double(1)
        b = double(2)
        c = BashTask("cleanup", command="true")
        [a, b] >> c

    spec = dag_to_spec(ordered)
    assert [t.task_id for t in spec.tasks][-1] == "cleanup"
    assert set(spec.task("cleanup").upstream) == {"double", "double__1"}
    assert spec.task("cleanup").data_upstream == ()


def test_a_cycle_is_refused_with_the_path() -> None:
    with pytest.raises(DagCycleError, match="cycle"):

        @dag
        def cyclic():
            a = double(1)
            b = double(a)
            b >> a


def test_spec_round_trips_losslessly() -> None:
    @dag(
        schedule="@daily",
        timezone="Europe/London",
        tags=["ml"],
        owner="team-a",
        max_active_runs=2,
        start_date="2026-01-01",
        catchup=True,
    )
    def full(user_id: int = 1, country: str = "GB"):
        train(total(double.partial().map(x=[user_id])))

    spec = dag_to_spec(full, "/dags/full.py")
    again = DagSpec.from_json(spec.to_json())
    assert again == spec
    assert asdict(again) == asdict(spec)
    trained = again.task("train")
    assert (trained.cpu, trained.gpu, trained.memory_mb) == (2.0, 1.0, 4096)
    assert (again.task("total").cpu, again.task("total").gpu, again.task("total").memory_mb) == (
        1.0,
        0.0,
        None,
    )
    assert spec.schedule is not None and spec.schedule.expr == "0 0 * * *"
    assert spec.start_date == "2026-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cpu": -1}, "cpu must be a number >= 0"),
        ({"gpu": "one"}, "gpu must be"),
        ({"memory": "4GB"}, "'4Gi'"),
    ],
    ids=["negative-cpu", "gpu-not-a-number", "memory-unit"],
)
def test_bad_resources_are_refused(options: dict[str, object], message: str) -> None:
    @dag
    def hungry():
        double.with_options(**options)(1)

    with pytest.raises(DagDefinitionError, match=message):
        dag_to_spec(hungry)


def test_params_schema_comes_from_the_signature() -> None:
    @dag
    def onboarding(user_id: int, country: str = "GB"):
        double(user_id)

    schema = dag_to_spec(onboarding).params_schema
    assert schema["required"] == ["user_id"]
    assert schema["properties"]["country"]["default"] == "GB"


def test_scheduled_dag_needs_defaults_for_every_param() -> None:
    @dag(schedule=every("10s"))
    def needs(user_id: int):
        double(user_id)

    with pytest.raises(DagDefinitionError, match="default"):
        dag_to_spec(needs)


def test_bad_cron_is_refused() -> None:
    @dag(schedule="61 * * * *")
    def bad():
        double(1)

    with pytest.raises(ScheduleError, match="minute"):
        dag_to_spec(bad)


def test_map_outside_a_dag_and_on_a_scalar_are_explained() -> None:
    with pytest.raises(DagDefinitionError, match="only works inside a @dag"):
        double.map(x=[1])
    with pytest.raises(DagDefinitionError, match="needs a list"):

        @dag
        def scalar():
            double.map(x=3)


def test_context_outside_a_task_says_how_to_test() -> None:
    with pytest.raises(zonda.sdk.context.NoTaskContextError, match=r"zonda\.testing"):
        zonda.context()


def test_run_locally_validates_params() -> None:
    from zonda.inprocess import run_locally

    @dag
    def onboarding(user_id: int, country: str = "GB"):
        double(user_id)

    with pytest.raises(ParamsError) as info:
        run_locally(onboarding, {"country": "FR"})
    assert info.value.details == [{"param": "user_id", "message": "missing required param"}]
    record = run_locally(onboarding, {"user_id": 4})
    assert record.state == "success"


def test_the_sdk_imports_nothing_from_the_server() -> None:
    code = (
        "import sys, zonda, zonda.sdk.serialize, zonda.sdk.discovery\n"
        "bad = [m for m in sys.modules if m.startswith(('zonda.db', 'zonda.api', 'zonda.scheduler', "
        "'zonda.services', 'sqlalchemy', 'fastapi'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
