"""The "started" report: sent for attempts that outlive the delay, never for short ones or after the end."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from zonda.executors.local.started import StartedReporter

DELAY = 0.02


def _recorder() -> tuple[list[float], threading.Event, Callable[[], None]]:
    sent: list[float] = []
    event = threading.Event()

    def send() -> None:
        sent.append(time.monotonic())
        event.set()

    return sent, event, send


def test_an_attempt_that_outlives_the_delay_is_reported_once_within_twice_the_delay() -> None:
    reporter = StartedReporter(DELAY)
    sent, event, send = _recorder()
    began = time.monotonic()
    reporter.started(send)
    assert event.wait(2.0)
    time.sleep(3 * DELAY)
    reporter.finished()
    assert len(sent) == 1
    assert DELAY <= sent[0] - began < 2 * DELAY + 0.05


def test_short_attempts_are_never_reported() -> None:
    reporter = StartedReporter(DELAY)
    sent, _, send = _recorder()
    for _ in range(50):
        reporter.started(send)
        reporter.finished()
    time.sleep(3 * DELAY)
    assert sent == []


def test_an_attempt_after_the_reporter_fell_asleep_is_still_reported() -> None:
    reporter = StartedReporter(DELAY, idle_after=0.05)
    sent, event, send = _recorder()
    reporter.started(lambda: None)
    reporter.finished()
    time.sleep(0.2)  # idle for longer than idle_after: the thread sleeps until woken
    reporter.started(send)
    assert event.wait(2.0)
    reporter.finished()
    assert len(sent) == 1
