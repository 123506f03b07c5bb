"""When a published request counts as lost: only on evidence that the broker no longer holds it."""

from __future__ import annotations

import pytest

from zonda.executors.base import TIRef
from zonda.executors.celery.deliveries import Deliveries

SETTLE = 4.0


def _ti(name: str) -> TIRef:
    return ("run", name, -1)


@pytest.mark.parametrize(
    ("worker_queues", "free"),
    [(("gpu",), False), (("default",), True)],
    ids=["its queue's workers are busy", "no worker consumes its queue"],
)
def test_a_request_that_waits_for_a_worker_is_never_due(worker_queues: tuple[str, ...], free: bool) -> None:
    d = Deliveries(SETTLE)
    d.published(_ti("a"), 1, "gpu", now=0.0)
    for t in range(1, 1000):
        d.heartbeat("w1", worker_queues, free=free, now=float(t))
    assert d.undelivered_for(_ti("a"), now=1000.0) == 0.0


def test_a_request_overtaken_by_a_later_one_on_its_queue_is_due_from_then() -> None:
    d = Deliveries(SETTLE)
    d.published(_ti("a"), 1, "default", now=0.0)
    d.published(_ti("other-queue"), 1, "gpu", now=0.5)
    d.published(_ti("b"), 1, "default", now=1.0)
    d.started(_ti("b"), 1, now=2.0)
    assert d.undelivered_for(_ti("a"), now=10.0) == 8.0
    assert d.undelivered_for(_ti("other-queue"), now=10.0) == 0.0


def test_the_oldest_request_starting_makes_no_other_due() -> None:
    d = Deliveries(SETTLE)
    d.published(_ti("a"), 1, "default", now=0.0)
    d.published(_ti("b"), 1, "default", now=1.0)
    d.started(_ti("a"), 1, now=2.0)
    assert d.undelivered_for(_ti("a"), now=10.0) is None
    assert d.undelivered_for(_ti("b"), now=10.0) == 0.0


def test_a_start_of_another_try_is_not_the_published_request_starting() -> None:
    d = Deliveries(SETTLE)
    d.published(_ti("a"), 2, "default", now=0.0)
    d.started(_ti("a"), 1, now=1.0)
    assert d.undelivered_for(_ti("a"), now=5.0) == 0.0


def test_a_free_slot_for_the_settle_time_makes_earlier_requests_due() -> None:
    d = Deliveries(SETTLE)
    d.published(_ti("a"), 1, "default", now=0.0)
    d.heartbeat("w1", ("default", "gpu"), free=True, now=2.0)
    d.published(_ti("b"), 1, "default", now=3.0)
    d.heartbeat("w1", ("default", "gpu"), free=True, now=5.0)
    assert d.undelivered_for(_ti("a"), now=5.0) == 0.0, "free for 3 s only"
    d.heartbeat("w1", ("default", "gpu"), free=True, now=6.0)
    assert d.undelivered_for(_ti("a"), now=10.0) == 4.0
    assert d.undelivered_for(_ti("b"), now=10.0) == 0.0, "free for 3 s since it was published"
    d.heartbeat("w1", ("default", "gpu"), free=True, now=7.0)
    assert d.undelivered_for(_ti("b"), now=10.0) == 3.0, (
        "published while the worker stood idle: due all the same"
    )


def test_a_busy_heartbeat_restarts_the_free_streak() -> None:
    d = Deliveries(SETTLE)
    d.published(_ti("a"), 1, "default", now=0.0)
    d.heartbeat("w1", ("default",), free=True, now=1.0)
    d.heartbeat("w1", ("default",), free=False, now=3.0)
    d.heartbeat("w1", ("default",), free=True, now=5.0)
    d.heartbeat("w1", ("default",), free=True, now=7.0)
    assert d.undelivered_for(_ti("a"), now=8.0) == 0.0, "free for 2 s since the busy heartbeat"
    d.heartbeat("w1", ("default",), free=True, now=9.0)
    assert d.undelivered_for(_ti("a"), now=12.0) == 3.0


def test_publishing_again_starts_afresh_and_forget_drops_the_request() -> None:
    d = Deliveries(SETTLE)
    d.published(_ti("a"), 1, "default", now=0.0)
    d.published(_ti("b"), 1, "default", now=1.0)
    d.started(_ti("b"), 1, now=2.0)
    d.published(_ti("a"), 1, "default", now=3.0)
    assert d.undelivered_for(_ti("a"), now=10.0) == 0.0
    d.forget(_ti("a"))
    assert d.undelivered_for(_ti("a"), now=10.0) is None


def test_a_request_not_published_is_unknown() -> None:
    assert Deliveries(SETTLE).undelivered_for(_ti("held"), now=1.0) is None


def test_waiting_lists_the_published_requests_that_have_not_started() -> None:
    d = Deliveries(SETTLE)
    d.published(_ti("a"), 1, "default", now=0.0)
    d.published(_ti("b"), 1, "gpu", now=0.0)
    d.published(_ti("c"), 1, "gpu", now=0.0)
    d.started(_ti("b"), 1, now=1.0)
    d.forget(_ti("a"))
    assert sorted(d.waiting()) == [(_ti("c"), "gpu")]
