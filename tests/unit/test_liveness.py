"""Liveness from heartbeats: age never negative, alive up to `beats` intervals inclusive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from zonda.core.liveness import alive, heartbeat_age

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_heartbeat_age_is_never_negative() -> None:
    assert heartbeat_age(NOW, NOW - timedelta(seconds=3)) == 3.0
    assert heartbeat_age(NOW, NOW + timedelta(seconds=1)) == 0.0


def test_alive_until_the_given_number_of_beats_have_passed() -> None:
    assert alive(10.0, interval=2.0, beats=5)
    assert not alive(10.1, interval=2.0, beats=5)
