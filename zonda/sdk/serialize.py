"""Turn a built `DAG` into its `DagSpec` (lossless for every option the server enforces)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from zonda.core.schedule import parse_duration, schedule_spec, validate_timezone
from zonda.core.spec import DagSpec, MapSource, TaskSpec
from zonda.core.states import TriggerRule
from zonda.errors import DagDefinitionError, ZondaError
from zonda.sdk.dag import DAG
from zonda.sdk.graph import TaskNode
from zonda.sdk.params import params_schema
from zonda.sdk.refs import ParamRef, TaskRef

ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")


def dag_to_spec(dag: DAG, fileloc: str = "") -> DagSpec:
    """Serialize `dag`; raises DagDefinitionError with the DAG and option at fault."""
    _check_id(dag.dag_id, "DAG id")
    opts = dag.options
    validate_timezone(opts.timezone)
    _check_positive(dag.dag_id, "max_active_runs", opts.max_active_runs)
    _check_positive(dag.dag_id, "max_active_tasks", opts.max_active_tasks)
    schedule = schedule_spec(opts.schedule)
    schema = params_schema(dag.params, dag.dag_id)
    if schedule is not None and schema.get("required"):
        raise DagDefinitionError(
            f"DAG '{dag.dag_id}' has a schedule, so every param needs a default; missing: {schema['required']}"
        )
    return DagSpec(
        dag_id=dag.dag_id,
        tasks=tuple(_task_spec(dag, node) for node in dag.nodes.values()),
        fileloc=fileloc,
        description=dag.description,
        schedule=schedule,
        timezone=opts.timezone,
        start_date=_start_date(opts.start_date, opts.timezone, dag.dag_id),
        catchup=opts.catchup,
        max_active_runs=opts.max_active_runs,
        max_active_tasks=opts.max_active_tasks,
        tags=tuple(opts.tags),
        owner=opts.owner,
        params_schema=schema,
    )


def _task_spec(dag: DAG, node: TaskNode) -> TaskSpec:
    opts = node.task.options
    where = f"DAG '{dag.dag_id}', task '{node.task_id}'"
    _check_id(node.task_id, "task id")
    _check_params_exist(dag, node, where)
    try:
        trigger_rule = TriggerRule(opts.trigger_rule)
    except ValueError:
        allowed = ", ".join(r.value for r in TriggerRule)
        raise DagDefinitionError(
            f"{where}: unknown trigger_rule {opts.trigger_rule!r}; use one of {allowed}"
        ) from None
    if opts.retries < 0 or opts.pool_slots < 1:
        raise DagDefinitionError(f"{where}: retries must be >= 0 and pool_slots >= 1")
    _check_resources(opts.cpu, opts.gpu, where)
    return TaskSpec(
        task_id=node.task_id,
        kind=node.task.kind,
        upstream=tuple(node.upstream),
        data_upstream=tuple(node.data_upstream),
        retries=opts.retries,
        retry_delay=_duration(opts.retry_delay, where, "retry_delay", allow_zero=True) or 0.0,
        retry_exponential_backoff=opts.retry_exponential_backoff,
        max_retry_delay=_duration(opts.max_retry_delay, where, "max_retry_delay"),
        timeout=_duration(opts.timeout, where, "timeout"),
        priority=opts.priority,
        pool=opts.pool,
        pool_slots=opts.pool_slots,
        queue=opts.queue,
        trigger_rule=trigger_rule,
        map_sources=tuple(_map_source(name, value) for name, value in node.mapped.items()),
        doc=(node.task.__doc__ or "").strip(),
        cpu=float(opts.cpu),
        gpu=float(opts.gpu),
        memory_mb=_memory_mb(opts.memory, where),
    )


def _map_source(arg: str, value: Any) -> MapSource:
    if isinstance(value, TaskRef):
        return MapSource(arg=arg, kind="task", ref=value.task_id)
    if isinstance(value, ParamRef):
        return MapSource(arg=arg, kind="param", ref=value.name)
    assert isinstance(value, Sequence)
    return MapSource(arg=arg, kind="literal", length=len(value))


def _duration(value: Any, where: str, option: str, allow_zero: bool = False) -> float | None:
    if value is None or (allow_zero and value in (0, 0.0)):
        return None if value is None else 0.0
    try:
        return parse_duration(value)
    except ZondaError as exc:
        raise DagDefinitionError(f"{where}: {option}: {exc}") from exc


def _check_resources(cpu: object, gpu: object, where: str) -> None:
    for name, value in (("cpu", cpu), ("gpu", gpu)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise DagDefinitionError(
                f"{where}: {name} must be a number >= 0 (e.g. cpu=2, gpu=1), got {value!r}"
            )


_MEMORY = re.compile(r"^\s*(\d+)\s*(Mi|Gi|Ti)?\s*$")
_MIB = {None: 1, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}


def _memory_mb(value: int | str | None, where: str) -> int | None:
    """Declared memory in MiB: an int is MiB already; strings take the suffixes Mi, Gi and Ti."""
    if value is None:
        return None
    match = _MEMORY.match(str(value)) if not isinstance(value, bool) else None
    if match is None or int(match.group(1)) == 0:
        raise DagDefinitionError(
            f"{where}: memory must be a positive number of MiB or a string such as '512Mi' or '4Gi', got {value!r}"
        )
    return int(match.group(1)) * _MIB[match.group(2)]


def _start_date(value: datetime | str | None, tz: str, dag_id: str) -> str | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        raise DagDefinitionError(
            f"DAG '{dag_id}': start_date {value!r} is not an ISO date such as 2026-01-01"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=validate_timezone(tz))
    return when.astimezone(UTC).isoformat()


def _check_params_exist(dag: DAG, node: TaskNode, where: str) -> None:
    unknown = node.params_used.difference(dag.params.model_fields)
    if unknown:
        raise DagDefinitionError(f"{where}: uses unknown params {sorted(unknown)}")


def _check_id(value: str, what: str) -> None:
    if not ID_PATTERN.match(value):
        raise DagDefinitionError(
            f"{what} {value!r} is not valid: use letters, digits, '_', '.', '-' (at most 200 characters)"
        )


def _check_positive(dag_id: str, option: str, value: int) -> None:
    if value < 1:
        raise DagDefinitionError(f"DAG '{dag_id}': {option} must be at least 1, got {value}")
