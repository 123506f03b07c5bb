"""Report `TaskStarted` only for attempts still running after a short delay.

Most tasks on a busy server take milliseconds; for them a separate "started" message would double
the traffic to the scheduler for a state nobody sees. `TaskFinished` carries the start time anyway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class StartedReporter:
    """A daemon thread that sends the pending "started" report once it is `delay` to `2 * delay` old.

    The thread looks at the pending report at least every `delay` while attempts come, and is not
    woken per attempt: at hundreds of short tasks per second, waking a thread for each cost more
    than the task. After `idle_after` seconds without attempts it sleeps until the next one.
    """

    def __init__(self, delay: float, idle_after: float = 1.0) -> None:
        self.delay = delay
        self.idle_after = idle_after
        self._cond = threading.Condition()
        self._pending: Callable[[], None] | None = None
        self._due = 0.0
        self._asleep = False
        threading.Thread(target=self._run, name="zonda-started-reporter", daemon=True).start()

    def started(self, send: Callable[[], None]) -> None:
        """`send` reports the start; it runs on the reporter's thread unless `finished` comes first."""
        with self._cond:
            self._pending, self._due = send, time.monotonic() + self.delay
            if self._asleep:
                self._cond.notify()

    def finished(self) -> None:
        """Call before sending `TaskFinished`: a `TaskStarted` is never sent after it."""
        with self._cond:
            self._pending = None

    def _run(self) -> None:
        last_seen = time.monotonic()
        with self._cond:
            while True:
                now = time.monotonic()
                if self._pending is not None:
                    last_seen = now
                    if now < self._due:
                        self._cond.wait(self._due - now)
                        continue
                    self._pending()
                    self._pending = None
                elif now - last_seen < self.idle_after:
                    self._cond.wait(self.delay)
                else:
                    self._asleep = True
                    self._cond.wait()
                    self._asleep = False
