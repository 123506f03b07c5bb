"""Executors by name: "local", "celery", or a dotted path "package.module:Class" as an escape hatch.

A dotted-path class is called as `Class(settings, scheduler_id)` and must satisfy
`zonda.executors.base.Executor`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zonda.errors import ConfigError

if TYPE_CHECKING:
    from zonda.executors.base import Executor
    from zonda.settings import Settings


def _local(settings: Settings, scheduler_id: str, **_: Any) -> Executor:
    from zonda.executors.local.pool import LocalExecutor
    from zonda.executors.local.tenancy import TenantUsers

    return LocalExecutor(
        settings.workers,
        settings.resolved_artifact_url,
        settings.inline_output_bytes,
        settings.run_dir / "journal",
        scheduler_id,
        settings.worker_nice,
        TenantUsers.from_settings(settings),
    )


def _celery(settings: Settings, scheduler_id: str, **options: Any) -> Executor:
    from zonda.executors.celery.executor import CeleryExecutor

    return CeleryExecutor.from_settings(settings, scheduler_id, **options)


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": _local, "celery": _celery}


def make_executor(settings: Settings, scheduler_id: str, **options: Any) -> Executor:
    """The executor `settings.executor` names, for the scheduler `scheduler_id`.

    `options` go to the built-in executors that take them (celery: `on_worker_heartbeats`).
    Raises ConfigError for an unknown name or a dotted path that does not import.
    """
    name = settings.executor
    if name in EXECUTORS:
        return EXECUTORS[name](settings, scheduler_id, **options)
    if ":" not in name:
        raise ConfigError(
            f"ZONDA_EXECUTOR={name!r} is not an executor; use local, celery or package.module:Class"
        )
    return _resolve(name)(settings, scheduler_id)  # type: ignore[no-any-return]


def _resolve(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"ZONDA_EXECUTOR={path!r} cannot be loaded: {exc}") from exc
