"""When a request goes before its commit, and which attempts of a taken-over run may have gone so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from zonda.scheduler.inherited import Inherited, sends_before_commit


def test_only_the_try_after_the_stored_one_is_inherited_until_settled() -> None:
    inherited = Inherited({("a", -1): 0, ("b", -1): 2})
    assert inherited.covers(("a", -1), 1)
    assert not inherited.covers(("a", -1), 2)
    assert inherited.covers(("b", -1), 3)
    assert not inherited.covers(("b", -1), 2), "the stored try is the DB's, not a new one"
    inherited.settle(("b", -1))
    assert not inherited.covers(("b", -1), 3)


def test_an_instance_mapped_after_the_takeover_may_have_its_first_try_inherited() -> None:
    inherited = Inherited({("grid", -1): 1})
    assert inherited.covers(("train", 0), 1)
    assert not inherited.covers(("train", 0), 2)


T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fresh_until", "commands_unstored", "withdrawn", "sends"),
    [
        (T0 + timedelta(seconds=1), False, False, True),
        (T0, False, False, False),
        (None, False, False, False),
        (T0 + timedelta(seconds=1), True, False, False),
        (T0 + timedelta(seconds=1), False, True, False),
    ],
    ids=[
        "lease renewed within half its length",
        "half a lease since the last renewal",
        "lease never renewed since the run was taken",
        "a command not yet stored",
        "an attempt withdrawn and queued again",
    ],
)
def test_a_request_goes_before_its_commit_only_while_a_successor_would_hold_it_back(
    fresh_until: datetime | None, commands_unstored: bool, withdrawn: bool, sends: bool
) -> None:
    assert sends_before_commit(T0, fresh_until, commands_unstored, withdrawn) is sends
