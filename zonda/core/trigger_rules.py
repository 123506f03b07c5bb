"""Trigger rules: given how upstream tasks ended so far, may a task run, and if not, why."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from zonda.core.states import TaskState, TriggerRule


class Verdict(Enum):
    """What a trigger rule decides for a task that has not started."""

    WAIT = "wait"
    RUN = "run"
    SKIP = "skip"
    UPSTREAM_FAILED = "upstream_failed"


@dataclass(slots=True)
class UpstreamTally:
    """How many upstream tasks ended in each way (one count per upstream task)."""

    total: int
    success: int = 0
    failed: int = 0
    upstream_failed: int = 0
    skipped: int = 0

    @property
    def done(self) -> int:
        return self.success + self.failed + self.upstream_failed + self.skipped

    @property
    def any_failed(self) -> bool:
        return self.failed + self.upstream_failed > 0

    def add(self, outcome: TaskState) -> None:
        if outcome is TaskState.SUCCESS:
            self.success += 1
        elif outcome is TaskState.FAILED:
            self.failed += 1
        elif outcome is TaskState.UPSTREAM_FAILED:
            self.upstream_failed += 1
        else:
            self.skipped += 1


def evaluate(rule: TriggerRule, t: UpstreamTally) -> Verdict:  # noqa: PLR0912 - one case per rule
    """Decide for one task; WAIT means more upstream tasks must end first."""
    all_done = t.done == t.total
    match rule:
        case TriggerRule.ALWAYS:
            return Verdict.RUN
        case TriggerRule.ALL_SUCCESS:
            return _all_success(t, all_done)
        case TriggerRule.ALL_DONE:
            return Verdict.RUN if all_done else Verdict.WAIT
        case TriggerRule.ALL_FAILED:
            if t.success or t.skipped:
                return Verdict.SKIP
            return Verdict.RUN if all_done else Verdict.WAIT
        case TriggerRule.ONE_SUCCESS:
            if t.success:
                return Verdict.RUN
            if not all_done:
                return Verdict.WAIT
            return Verdict.UPSTREAM_FAILED if t.any_failed else Verdict.SKIP
        case TriggerRule.ONE_FAILED:
            if t.any_failed:
                return Verdict.RUN
            return Verdict.SKIP if all_done else Verdict.WAIT
        case TriggerRule.NONE_FAILED:
            if t.any_failed:
                return Verdict.UPSTREAM_FAILED
            return Verdict.RUN if all_done else Verdict.WAIT
        case TriggerRule.NONE_SKIPPED:
            if t.skipped:
                return Verdict.SKIP
            return Verdict.RUN if all_done else Verdict.WAIT
    raise AssertionError(rule)


def _all_success(t: UpstreamTally, all_done: bool) -> Verdict:
    if t.any_failed:
        return Verdict.UPSTREAM_FAILED
    if t.skipped:
        return Verdict.SKIP
    return Verdict.RUN if all_done else Verdict.WAIT
