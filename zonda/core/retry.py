"""Retry policy: whether a failed attempt is retried, and after how long."""

from __future__ import annotations

from zonda.core.spec import TaskSpec

MAX_BACKOFF_SECONDS = 24 * 3600.0


def retry_delay(spec: TaskSpec, try_number: int) -> float:
    """Seconds to wait after failed attempt `try_number` (1-based) before the next one."""
    if not spec.retry_exponential_backoff:
        return spec.retry_delay
    base = spec.retry_delay or 1.0
    cap = spec.max_retry_delay or MAX_BACKOFF_SECONDS
    return float(min(base * 2 ** (try_number - 1), cap))


def max_tries(spec: TaskSpec, tries_so_far: int = 0) -> int:
    """The try number after which a failure is final (cleared tasks get their retries again)."""
    return tries_so_far + spec.retries + 1
