"""Sending a request before its queued state is stored, and what a successor inherits from it.

A scheduler publishes a remote executor's request before the task's queued state commits, while
the run's lease is fresh (ADR 0005). The scheduler that takes the run over cannot tell from the DB
whether such a request went out: at the takeover, each task instance's next attempt (its try
number then, plus one; the first for an instance mapped later) may be on its way to a worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from zonda.core.run_graph import TIKey


def sends_before_commit(
    now: datetime, fresh_until: datetime | None, commands_unstored: bool, withdrawn: bool
) -> bool:
    """Whether a remote executor's request may go before its queued state commits: only while the
    run's lease was renewed within half its length (`fresh_until`), so that a scheduler taking the
    run over does so after the request went, and holds the attempt back. Not for a run with a
    command applied and not yet stored (the successor applies it again, and would not hold back
    what it makes ready), nor for an attempt withdrawn and queued again (its new task id derives
    from the `queued_at` stored with it)."""
    return fresh_until is not None and now < fresh_until and not commands_unstored and not withdrawn


class Inherited:
    """The attempts of one taken-over run that may be the previous scheduler's. Each is settled
    once its fate is known: it reported (it is that scheduler's request, in flight), or every
    request published before the takeover should have reached a worker long ago (it never went)."""

    def __init__(self, tries: Mapping[TIKey, int]) -> None:
        self._tries = dict(tries)
        self._settled: set[TIKey] = set()

    def covers(self, key: TIKey, try_number: int) -> bool:
        """Whether this attempt may have been published by the previous scheduler."""
        return key not in self._settled and try_number == self._tries.get(key, 0) + 1

    def settle(self, key: TIKey) -> None:
        """The instance's inherited attempt is accounted for: later attempts are this scheduler's own."""
        self._settled.add(key)
