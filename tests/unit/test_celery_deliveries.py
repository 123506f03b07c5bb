"""When a published request counts as lost: only on evidence that the broker no longer holds it."""

from __future__ import annotations

import math

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


def test_without_a_takeover_no_queue_is_behind_a_barrier() -> None:
    d = Deliveries(SETTLE)
    assert d.barrier_due_for("default", now=0.0) == math.inf


def test_a_barrier_is_due_once_a_request_published_after_it_started() -> None:
    d = Deliveries(SETTLE)
    d.published(_ti("before"), 1, "default", now=0.0)
    d.barrier(now=1.0)
    assert d.barrier_due_for("default", now=1.0) == 0.0
    d.started(_ti("before"), 1, now=2.0)
    assert d.barrier_due_for("default", now=3.0) == 0.0, "published before the barrier: says nothing"
    d.published(_ti("after"), 1, "default", now=4.0)
    d.published(_ti("elsewhere"), 1, "gpu", now=4.0)
    d.started(_ti("elsewhere"), 1, now=5.0)
    assert d.barrier_due_for("default", now=6.0) == 0.0, "a start on another queue says nothing"
    d.started(_ti("after"), 1, now=6.0)
    assert d.barrier_due_for("default", now=16.0) == 10.0


def test_a_barrier_is_due_once_its_queue_had_a_free_worker_for_the_settle_time_since() -> None:
    d = Deliveries(SETTLE)
    d.barrier(now=10.0)
    d.barrier_due_for("default", now=10.0)
    d.heartbeat("w1", ("default",), free=True, now=8.0)
    d.heartbeat("w1", ("default",), free=True, now=12.0)
    assert d.barrier_due_for("default", now=12.0) == 0.0, "free since before the takeover, not long after it"
    d.heartbeat("w1", ("default",), free=True, now=14.0)
    assert d.barrier_due_for("default", now=20.0) == 6.0
    d.heartbeat("w2", ("gpu",), free=True, now=14.0)
    d.barrier_due_for("gpu", now=14.0)
    d.heartbeat("w2", ("gpu",), free=False, now=16.0)
    d.heartbeat("w2", ("gpu",), free=True, now=17.0)
    d.heartbeat("w2", ("gpu",), free=True, now=20.0)
    assert d.barrier_due_for("gpu", now=20.0) == 0.0, "a busy heartbeat starts the settle time again"


def test_a_later_takeover_raises_every_barrier_again() -> None:
    d = Deliveries(SETTLE)
    d.barrier(now=0.0)
    d.barrier_due_for("default", now=0.0)
    d.published(_ti("a"), 1, "default", now=1.0)
    d.started(_ti("a"), 1, now=2.0)
    assert d.barrier_due_for("default", now=3.0) == 1.0
    d.barrier(now=4.0)
    assert d.barrier_due_for("default", now=5.0) == 0.0
