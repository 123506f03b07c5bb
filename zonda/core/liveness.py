"""Is a component alive? Judged from its last heartbeat, the heartbeat interval and a tolerance in beats."""

from __future__ import annotations

from datetime import datetime

SCHEDULER_BEATS = 5
"""A scheduler that missed this many heartbeats in a row counts as not alive."""
WORKER_BEATS = 3
"""A worker whose last heartbeat is older than this many intervals counts as gone (as for its tasks)."""


def heartbeat_age(now: datetime, beat: datetime) -> float:
    """Seconds since `beat` (0 for a beat stamped slightly in the future by another clock)."""
    return max(0.0, (now - beat).total_seconds())


def alive(age: float, interval: float, beats: int) -> bool:
    """Whether a heartbeat `age` seconds old is recent enough, for beats every `interval` seconds."""
    return age <= beats * interval
