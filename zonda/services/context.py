"""The context every service function receives: the engine, the settings, the scheduler's waker, a clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from zonda.clock import utc_now
from zonda.core.permissions import SYSTEM, Principal

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from zonda.scheduler.wakeup import Waker
    from zonda.settings import Settings


@dataclass(frozen=True)
class Services:
    """What the service layer works with, built once by the composition root (`create_app`).

    Per-request facts (the authenticated `principal`, the client's address as `origin`) are set
    with `as_caller`, so every service function sees them without new arguments. The default
    principal is Zonda itself, for in-process callers such as the embedded CLI.
    """

    engine: Engine
    settings: Settings
    waker: Waker
    clock: Callable[[], datetime] = field(default=utc_now)
    principal: Principal = SYSTEM
    origin: str = ""

    def as_caller(self, principal: Principal, origin: str) -> Services:
        """These services acting for `principal`, whose request came from `origin`."""
        return replace(self, principal=principal, origin=origin)

    def now(self) -> datetime:
        """The current time from the injectable clock."""
        return self.clock()
