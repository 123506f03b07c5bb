"""Lost task messages on a real broker: published again only when a worker should have had them.

A message waiting for an absent or busy worker is not lost; publishing it again would run the task
twice. A message the broker dropped (here: its queue purged) is published again, and runs once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.celery_helpers import redis_db, waiting
from tests.integration.cluster import Cluster, assert_each_task_ran_once, celery_cluster, owners
from tests.services import drop_pg_database, fresh_pg_database
from zonda.executors.celery.app import make_app
from zonda.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

QUEUE = "slow"
REQUEUED = "queueing it again"


@pytest.fixture
def cluster(broker: str, pg_server: str, tmp_path: Path) -> Iterator[Cluster]:
    url, name = fresh_pg_database(pg_server)
    c = celery_cluster(broker, url, tmp_path)
    c.env["ZONDA_QUEUED_TIMEOUT"] = "1.5"
    yield c
    c.stop()
    drop_pg_database(pg_server, name)


def waiting_by_queue(cluster: Cluster) -> dict[str, int]:
    """What the system page says the default tenant has waiting per broker queue."""
    [load] = [
        t
        for t in cluster.client.get("/api/v1/metrics/system").json()["tenants"]
        if t["tenant_id"] == "default"
    ]
    return dict(load["waiting_by_queue"])


def purge(broker_url: str) -> None:
    with make_app(Settings(broker_url=broker_url)).connection_for_write() as conn:
        conn.default_channel.queue_purge(QUEUE)


def test_messages_are_published_again_only_once_lost(cluster: Cluster, broker: str, tmp_path: Path) -> None:
    cluster.start(expect_dags=14, schedulers=1)
    run_id = cluster.trigger("waits_on_broker")
    cluster.wait_until(lambda: waiting(broker, QUEUE) == 2, 30, "both tasks waiting on the broker")
    cluster.wait_until(
        lambda: waiting_by_queue(cluster).get(QUEUE) == 2, 10, "the scheduler's heartbeat to count them"
    )
    time.sleep(2.5)  # no worker consumes QUEUE: the messages wait, past the queued timeout
    assert waiting(broker, QUEUE) == 2, "a message waiting for an absent worker was published again"
    scheduler_log = cluster.home / "scheduler-0.out"
    assert REQUEUED not in scheduler_log.read_text()

    purge(broker)  # the broker loses both messages
    cluster.start_worker("w0", queues=QUEUE, concurrency=1)
    record = cluster.wait_run(run_id, timeout=60)

    assert record["state"] == "success"
    assert_each_task_ran_once([record], tmp_path / "marks")
    # Each lost message was published again once; the second task then waited 2 s behind the
    # first on the busy worker, past the timeout, and was not published a third time.
    assert scheduler_log.read_text().count(REQUEUED) == 2
    # Both were due at once: withdrawn by one revoke, which the worker's one slot handled once.
    [revoked] = [
        line for line in (cluster.home / "w0.out").read_text().splitlines() if "flagged as revoked" in line
    ]
    assert revoked.count(f"{run_id}:") == 4, f"one revoke for both tasks, two ids each: {revoked}"


def test_a_taken_over_task_waiting_for_a_busy_worker_is_not_published_again(
    redis_url: str, pg_server: str, tmp_path: Path
) -> None:
    """The survivor cannot tell whether the dead scheduler published a queued task. It waits for
    evidence, as for its own: here the only worker is busy, so the message is still waiting."""
    url, name = fresh_pg_database(pg_server)
    with redis_db(redis_url) as broker_url:
        c = celery_cluster(broker_url, url, tmp_path)
        c.env.update({"ZONDA_QUEUED_TIMEOUT": "1.5", "ZONDA_SCHEDULER_LEASE_SECONDS": "2"})
        try:
            c.start(expect_dags=14, schedulers=2)
            run_id = c.trigger("waits_on_broker", {"pause": 8})
            c.wait_until(
                lambda: waiting(broker_url, QUEUE) == 2, 30, "both published for a queue nobody consumes"
            )
            c.start_worker("w0", queues=QUEUE, concurrency=1)
            c.wait_until(
                lambda: waiting(broker_url, QUEUE) == 1, 30, "one task running, one waiting on the broker"
            )
            owner = owners(c.db_url, [run_id])[run_id]
            assert owner is not None
            victim = next(n for n, p in c.procs.items() if owner.endswith(f"-{p.pid}"))
            c.kill(victim)
            record = c.wait_run(run_id, timeout=60)
            assert record["state"] == "success"
            assert_each_task_ran_once([record], tmp_path / "marks")
            survivor = next(n for n in c.procs if n.startswith("scheduler-"))
            assert REQUEUED not in (c.home / f"{survivor}.out").read_text()
            assert waiting(broker_url, QUEUE) == 0
        finally:
            c.stop()
            drop_pg_database(pg_server, name)
