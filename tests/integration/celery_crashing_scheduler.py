"""A scheduler stand-in that dies hard.

Usage: python -m tests.integration.celery_crashing_scheduler BROKER_URL SCHEDULER_ID [REQUEST_JSON]

With a request: submit it, poll its outcome, never store it, print POLLED and wait to be killed.
Without: consume its reply queue, print CONSUMING and wait to be frozen (SIGSTOP) and killed.
"""

from __future__ import annotations

import json
import sys
import time
from multiprocessing.connection import wait

from tests.integration.celery_helpers import sealer
from zonda.executors.celery.app import make_app
from zonda.executors.celery.codec import decode_request
from zonda.executors.celery.executor import CeleryExecutor
from zonda.settings import Settings
from zonda.worker.protocol import TaskFinished


def main(broker: str, scheduler_id: str, request_json: str = "") -> None:
    executor = CeleryExecutor(make_app(Settings(broker_url=broker)), scheduler_id, sealer=sealer())
    executor.start()
    if not request_json:
        print("CONSUMING", flush=True)
        time.sleep(3600)
    executor.submit([decode_request(json.loads(request_json))])
    while True:
        wait(list(executor.waitables()), 1.0)
        if any(isinstance(m, TaskFinished) for m in executor.poll()):
            break  # polled, never checkpointed: the report stays unacknowledged
    print("POLLED", flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    main(*sys.argv[1:4])
