"""`@task`: a plain function that, called inside a `@dag` function, becomes a node of the graph."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, overload

from zonda.core.states import TriggerRule
from zonda.errors import DagDefinitionError
from zonda.sdk.graph import current_builder
from zonda.sdk.refs import ParamRef, TaskRef

Duration = float | int | timedelta | str


@dataclass(frozen=True)
class TaskOptions:
    """Options of a task, as the user wrote them (durations are normalised by the serializer)."""

    task_id: str | None = None
    retries: int = 0
    retry_delay: Duration = 0.0
    retry_exponential_backoff: bool = False
    max_retry_delay: Duration | None = None
    timeout: Duration | None = None
    priority: int = 0
    pool: str | None = None
    pool_slots: int = 1
    queue: str = "default"
    trigger_rule: TriggerRule | str = TriggerRule.ALL_SUCCESS
    serializer: str | None = None
    cpu: float = 1.0
    """CPUs the task declares it uses; its usage bill counts task-seconds times this."""
    gpu: float = 0.0
    """GPUs the task declares it uses; its usage bill counts task-seconds times this."""
    memory: int | str | None = None
    """Memory the task declares it needs: MiB as an int, or a string such as `512Mi` or `4Gi`."""


@dataclass(frozen=True)
class BashOptions:
    """How a bash task runs its command: extra environment, a virtualenv, a working directory."""

    env: Mapping[str, str] = field(default_factory=dict)
    venv: str | None = None
    cwd: str | None = None


class Task:
    """A task definition: the user's function plus options. Calling it outside a DAG calls the function."""

    def __init__(
        self,
        fn: Callable[..., Any],
        options: TaskOptions,
        kind: Literal["python", "bash"] = "python",
        bash: BashOptions | None = None,
    ) -> None:
        self.fn = fn
        self.options = options
        self.kind = kind
        self.bash = bash
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", "task")
        self.__wrapped__ = fn

    @property
    def task_id(self) -> str:
        return self.options.task_id or self.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = current_builder()
        if builder is None:
            return self.fn(*args, **kwargs)
        return builder.add(self, self.task_id, args=args, kwargs=kwargs)

    def with_options(self, **changes: Any) -> Task:
        """A copy of this task with some options changed, e.g. `train.with_options(task_id="train_gpu")`."""
        return Task(self.fn, dataclasses.replace(self.options, **changes), self.kind, self.bash)

    def partial(self, **kwargs: Any) -> MappedTaskBuilder:
        """Fix arguments that every mapped instance receives whole; follow with `.map(...)`."""
        return MappedTaskBuilder(self, kwargs)

    def map(self, **mapped: Any) -> TaskRef:
        """One task instance per element of each mapped argument (the cartesian product of several)."""
        return MappedTaskBuilder(self, {}).map(**mapped)

    def __repr__(self) -> str:
        return f"Task({self.task_id!r})"


class MappedTaskBuilder:
    """The result of `task.partial(...)`: waits for `.map(...)`."""

    def __init__(self, task: Task, kwargs: dict[str, Any]) -> None:
        self.task = task
        self.kwargs = kwargs

    def map(self, **mapped: Any) -> TaskRef:
        builder = current_builder()
        if builder is None:
            raise DagDefinitionError(
                f"{self.task.task_id}.map(...) builds mapped task instances and only works inside a @dag "
                "function; in a unit test call the function once per element instead"
            )
        if not mapped:
            raise DagDefinitionError(
                f"{self.task.task_id}.map() needs at least one keyword argument to map over"
            )
        for name, value in mapped.items():
            _check_mappable(self.task.task_id, name, value)
        return builder.add(self.task, self.task.task_id, kwargs=dict(self.kwargs), mapped=mapped)


def _check_mappable(task_id: str, name: str, value: Any) -> None:
    if isinstance(value, TaskRef | ParamRef):
        return
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return
    raise DagDefinitionError(
        f"{task_id}.map({name}=...) needs a list, a tuple, a task's result or a DAG param, "
        f"got {type(value).__name__}"
    )


class TaskDecorator:
    """`@task`, `@task(retries=3, ...)` and `@task.bash(...)`."""

    @overload
    def __call__(self, fn: Callable[..., Any], /) -> Task: ...

    @overload
    def __call__(self, fn: None = None, /, **options: Any) -> Callable[[Callable[..., Any]], Task]: ...

    def __call__(
        self, fn: Callable[..., Any] | None = None, /, **options: Any
    ) -> Task | Callable[[Callable[..., Any]], Task]:
        opts = TaskOptions(**options)
        if fn is not None:
            return Task(fn, opts)
        return lambda f: Task(f, opts)

    def bash(
        self,
        fn: Callable[..., str] | None = None,
        /,
        *,
        env: Mapping[str, str] | None = None,
        venv: str | None = None,
        cwd: str | None = None,
        **options: Any,
    ) -> Any:
        """A task whose function returns a shell command; Zonda runs it with bash and logs its output."""
        bash = BashOptions(env=dict(env or {}), venv=venv, cwd=cwd)

        def wrap(f: Callable[..., str]) -> Task:
            return Task(f, TaskOptions(**options), kind="bash", bash=bash)

        return wrap(fn) if fn is not None else wrap


task = TaskDecorator()


def BashTask(
    task_id: str,
    command: str,
    *,
    env: Mapping[str, str] | None = None,
    venv: str | None = None,
    cwd: str | None = None,
    **options: Any,
) -> TaskRef:
    """A task that runs `command` with bash, e.g. an existing script or cron job moved into Zonda."""

    def bash_command() -> str:
        return command

    bash_command.__name__ = task_id
    bash_command.__doc__ = f"Runs: {command}"
    if current_builder() is None:
        raise DagDefinitionError(f"BashTask({task_id!r}, ...) must be created inside a @dag function")
    made = Task(
        bash_command, TaskOptions(task_id=task_id, **options), "bash", BashOptions(dict(env or {}), venv, cwd)
    )
    ref: TaskRef = made()
    return ref
