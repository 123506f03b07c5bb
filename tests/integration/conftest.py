"""Fixtures of the integration tests that run on a real broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.celery_helpers import BROKERS, broker_namespace, make_executor
from zonda.executors.celery.executor import CeleryExecutor


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest) -> Iterator[str]:
    """A broker URL in a namespace of its own, on Redis and on RabbitMQ (one test each)."""
    with broker_namespace(request, request.param) as url:
        yield url


@pytest.fixture
def executor(broker: str) -> Iterator[CeleryExecutor]:
    """A started Celery executor on the test's broker, stopped afterwards."""
    started = make_executor(broker)
    yield started
    started.stop()
