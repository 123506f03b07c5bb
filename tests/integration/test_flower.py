"""Flower, the Celery monitor, on a real broker with a real `zonda worker`: it lists the worker's
slots, shows Zonda's tasks once it has turned task events on, and its terminate button stops a
task, which Zonda then reports failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.integration.celery_helpers import (
    Dag,
    Worker,
    collect,
    finished,
    unique,
)
from tests.integration.server import free_port
from tests.waiting import wait_until
from zonda.executors.celery.executor import CeleryExecutor, celery_task_id
from zonda.worker.protocol import TaskStarted

pytestmark = pytest.mark.slow

CELERY = str(Path(sys.executable).with_name("celery"))
SECRET = "flower-must-not-show-this"


class Flower:
    """A `celery flower` process on the broker, its HTTP API open without login (tests only)."""

    def __init__(self, broker: str, log: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "FLOWER_UNAUTHENTICATED_API": "true"}
        args = [CELERY, "--broker", broker, "flower", f"--port={port}", "--address=127.0.0.1"]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=out)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.load(response)

    def post(self, path: str, **form: str) -> Any:
        data = urllib.parse.urlencode(form).encode()
        with urllib.request.urlopen(self.url + path, data=data, timeout=10) as response:
            return json.load(response)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthcheck", timeout=2):
                pass
        except OSError:
            return False
        return True

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def queue() -> str:
    return unique("flower")


@pytest.fixture
def worker(broker: str, tmp_path: Path, queue: str) -> Iterator[Worker]:
    started = Worker(broker, tmp_path, [queue], concurrency=2)
    yield started
    started.stop()


@pytest.fixture
def flower(broker: str, tmp_path: Path) -> Iterator[Flower]:
    started = Flower(broker, tmp_path / "flower.out")
    wait_until(started.answers, 30, "Flower to answer")
    yield started
    started.stop()


def task_events_on(worker: Worker) -> bool:
    """Both slots took Flower's `enable_events` (Zonda leaves task events off by default)."""
    return worker.output().count("Events of group {task} enabled by remote") >= 2


def test_flower_lists_the_slots_and_shows_a_task_without_its_secrets(
    flower: Flower, worker: Worker, executor: CeleryExecutor, tmp_path: Path, queue: str
) -> None:
    slots = {f"{worker.name}-1@test", f"{worker.name}-2@test"}
    wait_until(lambda: slots <= set(flower.get("/api/workers?refresh=1")), 30, "Flower to list both slots")
    wait_until(lambda: task_events_on(worker), 30, "Flower to turn task events on")

    request = replace(Dag(tmp_path).request("hello", queue=queue), secrets={"TOKEN": SECRET})
    executor.submit([request])
    [outcome] = finished(collect(executor, lambda m: len(finished(m)) == 1))
    assert outcome.ok
    task_id = celery_task_id(request)
    wait_until(lambda: task_id in flower.get("/api/tasks"), 10, "Flower to show the task")
    wait_until(lambda: flower.get("/api/tasks")[task_id]["state"] == "SUCCESS", 10, "its success")

    shown = flower.get("/api/tasks")[task_id]
    assert shown["name"] == "zonda.run_task" and shown["worker"] in slots
    assert request.run_id in shown["args"], "the task's arguments name its run and task"
    assert SECRET not in json.dumps(flower.get("/api/tasks")), "Flower shows no secret of the request"


def test_terminating_a_task_from_flower_reports_it_failed(
    flower: Flower, worker: Worker, executor: CeleryExecutor, tmp_path: Path, queue: str
) -> None:
    wait_until(lambda: task_events_on(worker), 30, "Flower to turn task events on")
    request = Dag(tmp_path).request("slow_first", queue=queue)
    executor.submit([request])
    collect(executor, lambda m: any(isinstance(x, TaskStarted) for x in m))

    answer = flower.post(f"/api/task/revoke/{celery_task_id(request)}", terminate="true", signal="SIGKILL")
    assert answer["message"] == f"Revoked {celery_task_id(request)!r}"
    [outcome] = finished(collect(executor, lambda m: len(finished(m)) == 1, timeout=15))
    assert not outcome.ok and outcome.error is not None and outcome.worker == worker.id
    assert outcome.error.startswith("WorkerLostError: ") and "killed by SIGKILL" in outcome.error
