"""Zonda: write pipelines as plain Python functions; Zonda schedules and runs them.

This module is the authoring API that DAG files import.
"""

from zonda.sdk.context import TaskContext, context
from zonda.sdk.dag import DAG, dag
from zonda.sdk.refs import TaskRef
from zonda.sdk.schedules import every
from zonda.sdk.secrets import mask, secret
from zonda.sdk.task import BashTask, Task, task

__all__ = [  # noqa: RUF022 - grouped by concept
    # authoring
    "DAG",
    "BashTask",
    "Task",
    "TaskRef",
    "dag",
    "every",
    "task",
    # at run time
    "TaskContext",
    "context",
    "mask",
    "secret",
]
