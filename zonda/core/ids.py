"""Identifiers: time-ordered run ids that sort by creation and need no coordination."""

from __future__ import annotations

import os
import time


def new_run_id() -> str:
    """A 26-character id: milliseconds since the epoch, then random bits, both in hex."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(7).hex()}"
