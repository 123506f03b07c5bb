"""Which attempts of a taken-over run may be the previous scheduler's: its next try of each instance."""

from __future__ import annotations

from zonda.scheduler.inherited import Inherited


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
