"""The context every service function receives: the engine, the settings, the scheduler's waker, a clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from zonda.scheduler.wakeup import Waker
    from zonda.settings import Settings


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Services:
    """What the service layer works with, built once by the composition root (`create_app`).

    Per-request facts (the authenticated principal, its tenant) will be added here and set with
    `dataclasses.replace`, so that every service function sees them without new arguments.
    """

    engine: Engine
    settings: Settings
    waker: Waker
    clock: Callable[[], datetime] = field(default=utc_now)

    def now(self) -> datetime:
        """The current time from the injectable clock."""
        return self.clock()
