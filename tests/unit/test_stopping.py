"""Stop signals become events without the handler taking a lock (it may interrupt a lock's holder)."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from zonda.stopping import on_stop_signals

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


@pytest.fixture(autouse=True)
def restore_handlers() -> Iterator[None]:
    before = {signum: signal.getsignal(signum) for signum in HANDLED}
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


def test_a_signal_while_this_thread_holds_the_events_lock_does_not_hang() -> None:
    request = on_stop_signals()
    with request.stop._cond:  # type: ignore[attr-defined]  # where a signal can land: inside Event.set or wait
        signal.raise_signal(signal.SIGTERM)
    assert request.stop.wait(5)
    assert not request.now.is_set()


def test_a_second_stop_signal_means_now() -> None:
    request = on_stop_signals()
    signal.raise_signal(signal.SIGINT)
    assert request.stop.wait(5)
    signal.raise_signal(signal.SIGTERM)
    assert request.now.wait(5)


def test_a_now_signal_stops_at_once() -> None:
    request = on_stop_signals(now_signals=(signal.SIGQUIT,))
    signal.raise_signal(signal.SIGQUIT)
    assert request.now.wait(5)
    assert request.stop.is_set()
