"""The Celery executor's pure parts: wire format, routing, lost-worker detection, remote logs, registry."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import pytest
from cryptography.fernet import Fernet

from zonda.core.outputs import ArtifactRef
from zonda.errors import ConfigError
from zonda.executors.celery.codec import (
    ProtocolError,
    decode,
    decode_report,
    decode_request,
    decode_task_message,
    encode,
    encode_task_message,
)
from zonda.executors.celery.events import RunningTask, WorkerHeartbeat
from zonda.executors.celery.logs import attempt_log, is_local
from zonda.executors.celery.routing import PoolRouting, RouteInfo, RoutingHook, TenantRouting, route
from zonda.executors.celery.sealing import SHARED, Sealer, WorkerKeys, worker_keys
from zonda.executors.celery.tracker import LostWorkerTracker
from zonda.executors.local.pool import LocalExecutor
from zonda.executors.registry import make_executor
from zonda.services.logs import read_text
from zonda.settings import Settings
from zonda.worker.protocol import TaskFinished, TaskRequest, TaskStarted

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def request(**changes: Any) -> TaskRequest:
    base = TaskRequest(
        run_id="r1",
        dag_id="d",
        task_id="t",
        map_index=2,
        try_number=1,
        dag_version=3,
        code_uri="/code/abc.py",
        code_hash="abc",
        fileloc="/dags/d.py",
        log_path="/logs/d/r1/t.2/attempt-1.log",
        output_path="d/r1/t.2/1",
        params={"n": 3, "nested": {"__type__": "bytes", "when": "2026-01-01"}},
        inputs={
            "small": ArtifactRef("json", 3, data=b"\x00\xff1"),
            "big": ArtifactRef("pickle", 10_000, uri="s3://bucket/x"),
            "many": [ArtifactRef("json", 1, data=b"1"), ArtifactRef("json", 1, data=b"2")],
            "nothing": None,
        },
        key="user-42",
        logical_date=NOW,
        timeout=1.5,
        secrets={"TOKEN": "s3cr3t"},
        queue="gpu",
        reply_to="zonda.events.s1",
    )
    return dataclasses.replace(base, **changes)


# Wire format -----------------------------------------------------------------------------------


def test_every_message_survives_its_json_frame() -> None:
    req = request()
    started = TaskStarted("r1", "t", 2, 1, NOW, pid=7, worker="w@h")
    done = TaskFinished("r1", "t", 2, 1, ok=True, started_at=NOW, ended_at=NOW,
                        output=ArtifactRef("json", 2, data=b"42"), length=3, worker="w@h")  # fmt: skip
    assert decode_request(encode(req)) == req
    assert decode_report(encode(started)) == started
    assert decode_report(encode(done)) == done
    assert encode(req)["params"]["nested"] == {"__type__": "bytes", "when": "2026-01-01"}


def test_scheduler_side_fields_stay_off_the_wire() -> None:
    """Workers of the previous release refuse unknown fields: `queued_at` is never sent."""
    req = request(queued_at=NOW)
    assert "queued_at" not in encode(req)
    assert decode_request(encode(req)) == request()


def test_messages_it_cannot_read_are_refused_with_a_reason() -> None:
    newer = {**encode(request()), "version": 99}
    with pytest.raises(ProtocolError, match="upgrade Zonda"):
        decode_request(newer)
    with pytest.raises(ProtocolError, match="unknown fields"):
        decode_request({**encode(request()), "surprise": 1})
    with pytest.raises(ProtocolError, match="expected a TaskRequest"):
        decode(encode(TaskStarted("r", "t", -1, 1, NOW, 1)), TaskRequest)
    with pytest.raises(ProtocolError, match="malformed"):
        decode_request({"type": "TaskRequest", "run_id": "r"})


def test_a_message_carries_one_request_or_several_each_with_its_task_id() -> None:
    key = Fernet.generate_key()
    sealer, keys = Sealer([key], per_tenant=False), WorkerKeys(worker_keys([key], SHARED))
    one, two = request(), request(task_id="other")
    single = encode_task_message([("a:1", one)], sealer)
    assert single["type"] == "SealedTaskRequest", "one request: the request itself, sealed"
    assert decode_task_message("a:1", single, keys) == [("a:1", one)]
    several = encode_task_message([("a:1", one), ("b:1", two)], sealer)
    assert decode_task_message("a:1+1", several, keys) == [("a:1", one), ("b:1", two)]
    with pytest.raises(ProtocolError, match="several requests"):
        decode_task_message("a:1+1", [{"request": single}], keys)


def test_heartbeats_survive_their_json_frame() -> None:
    beat = WorkerHeartbeat(
        "w@h", "h", ("default", "gpu"), 4, (RunningTask("r", "t", -1, 2, "q"),), NOW, NOW, cpus=2
    )
    assert WorkerHeartbeat.from_json(beat.to_json()) == beat
    older = {k: v for k, v in beat.to_json().items() if k != "cpus"}
    assert WorkerHeartbeat.from_json(older).cpus is None, "a worker that does not say its CPUs"
    with pytest.raises(ProtocolError):
        WorkerHeartbeat.from_json({"type": "WorkerHeartbeat"})


# Routing ---------------------------------------------------------------------------------------


class Broken(RoutingHook):
    def queue_for(self, request: TaskRequest, info: RouteInfo, queue: str) -> str:
        raise RuntimeError("bug in a hook")


def test_routing_uses_the_task_queue_then_the_hooks() -> None:
    req = request(queue="gpu")
    assert route(req, RouteInfo.of(req)) == "gpu"
    assert route(req, RouteInfo(queue="default", pool="big"), [PoolRouting({"big": "bigmem"})]) == "bigmem"
    assert route(req, RouteInfo(queue="gpu"), [Broken(), TenantRouting()]) == "gpu"


# Lost workers ----------------------------------------------------------------------------------


def beat(worker: str, *running: RunningTask) -> WorkerHeartbeat:
    return WorkerHeartbeat(worker, "h", ("q",), 2, running, NOW, NOW)


def test_an_attempt_whose_worker_stops_heartbeating_is_lost_after_three_intervals() -> None:
    tracker = LostWorkerTracker(interval=1.0)
    tracker.started(TaskStarted("r", "t", -1, 1, NOW, 1, worker="w1"), "mine", now=0.0)
    tracker.heartbeat(beat("w1", RunningTask("r", "t", -1, 1, "mine")), {"mine"}, now=1.0)
    assert tracker.lost(now=3.9) == []
    [lost] = tracker.lost(now=4.1)
    assert (lost.ti_key, lost.try_number, lost.ok) == (("r", "t", -1), 1, False)
    assert lost.error == "WorkerLostError: worker w1 stopped heartbeating while running the task"
    assert tracker.lost(now=10.0) == []


def test_an_attempt_a_live_worker_no_longer_lists_is_lost_too() -> None:
    tracker = LostWorkerTracker(interval=1.0)
    tracker.heartbeat(beat("w1", RunningTask("r", "t", -1, 1, "mine")), {"mine"}, now=0.0)
    for now in (1.0, 2.0, 3.0, 4.0):
        tracker.heartbeat(beat("w1"), {"mine"}, now=now)
    [lost] = tracker.lost(now=4.0)
    assert lost.error is not None and "w1 no longer runs the task" in lost.error


def test_finished_attempts_and_other_schedulers_attempts_are_never_reported() -> None:
    tracker = LostWorkerTracker(interval=1.0)
    tracker.started(TaskStarted("r", "t", -1, 1, NOW, 1, worker="w1"), "mine", now=0.0)
    tracker.finished(TaskFinished("r", "t", -1, 1, ok=True, started_at=NOW, ended_at=NOW))
    late = beat("w1", RunningTask("r", "t", -1, 1, "mine"), RunningTask("r2", "t", -1, 1, "theirs"))
    tracker.heartbeat(late, {"mine"}, now=0.5)  # sent before the end, received after it
    assert tracker.lost(now=100.0) == []


# Remote logs -----------------------------------------------------------------------------------


def test_local_logs_are_written_in_place(tmp_path: Path) -> None:
    target = tmp_path / "a" / "attempt-1.log"
    assert is_local(str(target)) and is_local(f"file://{target}")
    with attempt_log(f"file://{target}") as local:
        assert local == str(target)


def test_remote_logs_are_uploaded_when_the_attempt_ends() -> None:
    url = "memory://zonda-test-logs/d/r1/t/attempt-1.log"
    assert not is_local(url)
    with attempt_log(url) as local:
        Path(local).write_text("hello\n")
        assert read_text(url) == ""
    assert read_text(url) == "hello\n"
    assert not Path(local).exists()
    with attempt_log("memory://zonda-test-logs/silent.log"):
        pass
    assert not fsspec.filesystem("memory").exists("/zonda-test-logs/silent.log")


# Registry --------------------------------------------------------------------------------------


class CustomExecutor:
    def __init__(self, settings: Settings, scheduler_id: str) -> None:
        self.scheduler_id = scheduler_id


def test_executors_are_chosen_by_name_or_dotted_path(tmp_path: Path) -> None:
    assert isinstance(make_executor(Settings(home=tmp_path), "s1"), LocalExecutor)
    custom = make_executor(Settings(executor=f"{__name__}:CustomExecutor"), "s1")
    assert isinstance(custom, CustomExecutor) and custom.scheduler_id == "s1"
    with pytest.raises(ConfigError, match="ZONDA_BROKER_URL"):
        make_executor(Settings(executor="celery", broker_url=""), "s1")
    with pytest.raises(ConfigError, match=r"use local, celery or package\.module:Class"):
        make_executor(Settings(executor="kubernetes"), "s1")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        make_executor(Settings(executor="no.such.module:Executor"), "s1")


def test_pool_routing_from_settings_follows_the_task_pool() -> None:
    from zonda.executors.celery.routing import hooks_from
    from zonda.settings import Settings

    settings = Settings(pool_queues={"gpu": "gpu-queue"})
    hooks = hooks_from(settings.pool_queues)
    gpu = TaskRequest("r", "d", "t", -1, 1, 1, "", "h", "", "", "", pool="gpu")
    cpu = TaskRequest("r", "d", "t", -1, 1, 1, "", "h", "", "", "", queue="cpu")
    assert route(gpu, RouteInfo.of(gpu), hooks) == "gpu-queue"
    assert route(cpu, RouteInfo.of(cpu), hooks) == "cpu"
