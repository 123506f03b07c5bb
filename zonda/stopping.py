"""Stop requests from SIGTERM, SIGINT and SIGQUIT, turned into events without locking in a handler.

A Python signal handler runs in the main thread between any two bytecodes, also while that
thread holds the lock inside a `threading.Event` (in its `set` or `wait`), or inside an earlier
handler (`timeout` and process managers often send a signal twice). Setting an event from the
handler could then wait for a lock its own thread holds, forever. So the handler only writes the
signal's number to a pipe, and a watcher thread sets the events.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from dataclasses import dataclass, field
from types import FrameType


@dataclass(frozen=True)
class StopRequest:
    """`stop` is set by the first SIGTERM or SIGINT; `now` by a second one, or by SIGQUIT (stop
    without waiting for running work)."""

    stop: threading.Event = field(default_factory=threading.Event)
    now: threading.Event = field(default_factory=threading.Event)


def on_stop_signals(now_signals: tuple[signal.Signals, ...] = ()) -> StopRequest:
    """Install handlers for SIGTERM, SIGINT and `now_signals` (main thread only); returns the
    events they set."""
    request = StopRequest()
    read, write = os.pipe()
    os.set_blocking(write, False)

    def handler(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(BlockingIOError):  # the watcher has a backlog of signals already
            os.write(write, bytes([signum]))

    def watch() -> None:
        while data := os.read(read, 64):
            for signum in data:
                now = signum in now_signals or request.stop.is_set()
                request.stop.set()
                if now:
                    request.now.set()

    threading.Thread(target=watch, name="zonda-stop-signals", daemon=True).start()
    for signum in (signal.SIGTERM, signal.SIGINT, *now_signals):
        signal.signal(signum, handler)
    return request
