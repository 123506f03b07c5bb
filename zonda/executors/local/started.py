"""Report `TaskStarted` only for attempts still running after a short delay.

Most tasks on a busy server take milliseconds; for them a separate "started" message would double
the traffic to the scheduler for a state nobody sees. `TaskFinished` carries the start time anyway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class StartedReporter:
    """A daemon thread that sends the pending "started" report once it is `delay` seconds old."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._cond = threading.Condition()
        self._pending: Callable[[], None] | None = None
        self._due = 0.0
        threading.Thread(target=self._run, name="zonda-started-reporter", daemon=True).start()

    def started(self, send: Callable[[], None]) -> None:
        """`send` reports the start; it runs on the reporter's thread unless `finished` comes first."""
        with self._cond:
            self._pending, self._due = send, time.monotonic() + self.delay
            self._cond.notify()

    def finished(self) -> None:
        """Call before sending `TaskFinished`: a `TaskStarted` is never sent after it."""
        with self._cond:
            self._pending = None

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._pending is None:
                    self._cond.wait()
                remaining = self._due - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._pending()
                self._pending = None
