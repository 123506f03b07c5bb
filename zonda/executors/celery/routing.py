"""Which Celery queue a request goes to: the task's `queue` option, then the routing hooks in order.

A hook is a small class with one method; the default hooks are no-ops that mark where a feature
plugs in. A hook that raises is logged and skipped, so a broken hook cannot stop dispatching.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from zonda.worker.protocol import TaskRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouteInfo:
    """Spec-level facts routing may use besides the request (more arrive as the request carries them)."""

    queue: str = "default"
    pool: str | None = None
    tenant: str | None = None

    @classmethod
    def of(cls, request: TaskRequest) -> RouteInfo:
        return cls(queue=request.queue or "default", pool=request.pool, tenant=request.tenant)


class RoutingHook:
    """Base hook: may change the queue chosen so far. The base class keeps it unchanged."""

    def queue_for(self, request: TaskRequest, info: RouteInfo, queue: str) -> str:
        return queue


class PoolRouting(RoutingHook):
    """Send the tasks of some pools to dedicated queues, e.g. `{"gpu": "gpu"}` (others keep theirs)."""

    def __init__(self, queues_by_pool: dict[str, str]) -> None:
        self.queues_by_pool = dict(queues_by_pool)

    def queue_for(self, request: TaskRequest, info: RouteInfo, queue: str) -> str:
        return self.queues_by_pool.get(info.pool or "", queue)


class TenantRouting(RoutingHook):
    """Give each tenant its own worker queues (ZONDA_TENANT_QUEUES): a task of tenant T goes to
    `T.<queue>`, which only `zonda worker --tenant T` consumes, so no tenant's task runs in a worker
    process that serves another tenant. Off, it keeps the queue (every worker serves every tenant)."""

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled

    def queue_for(self, request: TaskRequest, info: RouteInfo, queue: str) -> str:
        if not self.enabled or info.tenant is None:
            return queue
        return tenant_queue(info.tenant, queue)


def tenant_queue(tenant: str, queue: str) -> str:
    """The queue of `tenant`'s workers for the task option `queue`."""
    return f"{tenant}.{queue}"


DEFAULT_HOOKS: tuple[RoutingHook, ...] = (TenantRouting(),)


def hooks_from(pool_queues: dict[str, str], tenant_queues: bool = False) -> tuple[RoutingHook, ...]:
    """The hooks for the settings: pool routing when pools are mapped to queues, then tenants
    (tenant prefixes last, so a pool's queue is prefixed too)."""
    pools = (PoolRouting(pool_queues),) if pool_queues else ()
    return (*pools, TenantRouting(tenant_queues))


def route(request: TaskRequest, info: RouteInfo, hooks: Sequence[RoutingHook] = DEFAULT_HOOKS) -> str:
    """The queue name for `request`: `info.queue`, passed through each hook in turn."""
    queue = info.queue
    for hook in hooks:
        try:
            queue = hook.queue_for(request, info, queue) or queue
        except Exception:  # a broken hook must not stop dispatching
            log.exception("routing hook %s failed; keeping queue %r", type(hook).__name__, queue)
    return queue
