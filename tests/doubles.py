"""Test doubles that run real logic: a Waker that records what it was asked to wake."""

from __future__ import annotations


class RecordingWaker:
    """A real Waker that keeps the topics it was asked to wake instead of sending them."""

    def __init__(self) -> None:
        self.topics: list[str] = []

    def wake(self, topic: str = "runs") -> None:
        self.topics.append(topic)

    @property
    def wakes(self) -> int:
        return len(self.topics)
