"""The Celery app, built from `Settings` by both sides (the scheduler's executor and `zonda worker`).

The configuration is the delivery contract, so it lives in one place:

- one task type, `zonda.run_task`, whose only argument is a JSON-framed `TaskRequest`
  (`codec.py`); only JSON is accepted, so no message can make a worker unpickle code;
- no result backend: outcomes go to the scheduler's reply queue (`events.py`); `results.NoResults`
  stores nothing, and lets a revoke flag its ids without a warning per id on every slot;
- `task_acks_late` with `worker_prefetch_multiplier=1`: a slot holds only the message it runs,
  so a long task never waits behind another in a busy slot while an idle one has room;
- a message the broker delivers again (the slot that had it died, or lost its connection) is
  reported as `WorkerLostError` instead of run a second time (`task.py`), and
  `worker_cancel_long_running_tasks_on_connection_loss` stops the first copy in that case (its
  slot ends, `slot.py`);
- Celery task events follow `ZONDA_CELERY_EVENTS` (off by default, as in Celery: they cost several
  broker messages per task). Flower turns them on at run time (`celery control enable_events`),
  or set `ZONDA_CELERY_EVENTS=true` to have them from the start;
- on a `redis://` broker, kombu's Redis transport with one client per channel
  (`redis_transport.py`).
"""

from __future__ import annotations

from celery import Celery

from zonda.errors import ConfigError
from zonda.executors.celery.results import NO_RESULTS
from zonda.settings import Settings

TASK_NAME = "zonda.run_task"
REDIS_TRANSPORT = "zonda.executors.celery.redis_transport:Transport"


def make_app(settings: Settings) -> Celery:
    """A Celery app on `settings.broker_url` (ConfigError if none is set)."""
    if not settings.broker_url:
        raise ConfigError(
            "the Celery executor needs a broker: set ZONDA_BROKER_URL, e.g. redis://127.0.0.1:6379/0 "
            "or amqp://guest:guest@127.0.0.1:5672//"
        )
    app = Celery("zonda", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_backend=NO_RESULTS,
        task_ignore_result=True,
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_send_task_events=settings.celery_events,
        task_send_sent_event=settings.celery_events,
        task_default_queue="default",
        task_create_missing_queues=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.celery_visibility_timeout},
        enable_utc=True,
    )
    if settings.broker_url.startswith("redis://"):
        app.conf.broker_transport = REDIS_TRANSPORT
    return app
