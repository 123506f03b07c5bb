"""What each slot process of a `zonda worker` runs, as its supervisor learns it over a pipe.

A slot process writes one JSON line per change to the pipe its supervisor gave it: `ready` once
its Celery consumer is up, `start` with the attempt it begins (and its Celery task id), `end` when
the attempt's outcome is published, `rest` when it stops consuming its queues (`gate.py`). Lines
are short (well under `PIPE_BUF`), so each write is atomic. The supervisor uses what it reads for its heartbeats (the attempts it runs) and to
report the attempt of a slot that died (a slot whose task is terminated ends itself, `slot.py`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from zonda.executors.celery.events import RunningTask


@dataclass(frozen=True, slots=True)
class SlotTask:
    """The attempt a slot runs, with the Celery task id that a revoke names."""

    celery_id: str
    task: RunningTask


class SlotReporter:
    """The slot process's side: tells the supervisor what it runs (its task thread) and when it
    rests (its consumer's thread). `urgent`: a pipe shared by the slots that wakes the supervisor
    at once, for what cannot wait until it next reads (a handover, `handover.py`)."""

    def __init__(self, fd: int, urgent: int | None = None) -> None:
        self.fd = fd
        self.urgent = urgent

    def ready(self) -> None:
        self._write({"ready": True})

    def started(self, current: SlotTask) -> None:
        self._write({"start": current.celery_id, "task": asdict(current.task)})

    def ended(self) -> None:
        self._write({"end": True})

    def rested(self) -> None:
        self._write({"rest": True})
        self.nudge()

    def nudge(self) -> None:
        """Wake the supervisor now to read what this slot wrote (a resting slot rested or became idle)."""
        if self.urgent is not None:
            os.write(self.urgent, b"!")

    def _write(self, line: dict[str, object]) -> None:
        os.write(self.fd, json.dumps(line).encode() + b"\n")


class SlotState:
    """The supervisor's side for one slot: feed it the bytes read from the pipe."""

    def __init__(self, consuming: bool = True) -> None:
        self.ready = False
        self.consuming = consuming
        self.current: SlotTask | None = None
        self._buffer = b""

    def feed(self, data: bytes) -> None:
        """Apply every complete line in `data` (a partial line waits for the rest)."""
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._apply(json.loads(line))

    def _apply(self, line: dict[str, object]) -> None:
        if line.get("ready"):
            self.ready = True
        elif "start" in line:
            fields = line["task"]
            assert isinstance(fields, dict)
            self.current = SlotTask(str(line["start"]), RunningTask(**fields))
        elif line.get("end"):
            self.current = None
        elif line.get("rest"):
            self.consuming = False
