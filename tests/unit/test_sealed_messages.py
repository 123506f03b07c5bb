"""Sealed task messages (ADR 0015): what requests and reports show on the broker, and who can open them."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet

from tests.unit.test_celery_parts import request as celery_request
from zonda.core.outputs import ArtifactRef
from zonda.errors import ConfigError
from zonda.executors.celery.codec import (
    ProtocolError,
    Unopened,
    encode,
    foreign_report,
    forwarded_report,
    open_report,
    open_request,
    seal_report,
    seal_request,
)
from zonda.executors.celery.events import (
    RunningTask,
    WorkerHeartbeat,
    open_heartbeat,
    seal_heartbeat,
    unvouched,
    vouched_for,
)
from zonda.executors.celery.sealing import (
    SCHEDULERS,
    SHARED,
    Sealer,
    WorkerKeys,
    derive_key,
    scope_tenant,
    tenant_scope,
    worker_keys,
)
from zonda.worker.protocol import TaskFinished, TaskRequest, TaskStarted

KEY = Fernet.generate_key()
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def request(dag_id: str = "team-a/etl", **changes: object) -> TaskRequest:
    """A request of tenant team-a's task `load`, try 2, with a secret, a param and a run token to look for."""
    return celery_request(
        dag_id=dag_id,
        task_id="load",
        map_index=-1,
        try_number=2,
        params={"customer": "acme-params-value"},
        secrets={"DB_PASSWORD": "hunter2-secret-value"},
        api_token="zondarun_r1_signature-value",
        **changes,
    )


def tenant_keys(tenant: str, *keys: bytes) -> WorkerKeys:
    return WorkerKeys(worker_keys(list(keys or (KEY,)), tenant_scope(tenant)))


def test_the_broker_sees_the_attempt_but_not_its_secrets_token_or_params() -> None:
    sealed = seal_request(request(), Sealer([KEY], per_tenant=True))
    text = json.dumps(sealed)
    for value in ("hunter2-secret-value", "zondarun_r1_signature-value", "acme-params-value", "/code/abc.py"):
        assert value not in text
    assert sealed["run_id"] == "r1" and sealed["task_id"] == "load" and sealed["try_number"] == 2
    assert sealed["scope"] == "tenant:team-a" and sealed["reply_to"] == "zonda.events.s1"


def test_a_tenants_worker_opens_its_own_tenants_requests_only() -> None:
    sealer = Sealer([KEY], per_tenant=True)
    mine, theirs = request(), request(dag_id="team-b/etl")
    keys = tenant_keys("team-a")
    assert open_request(seal_request(mine, sealer), keys) == mine
    unopened = open_request(seal_request(theirs, sealer), keys)
    assert isinstance(unopened, Unopened)
    assert (unopened.run_id, unopened.task_id, unopened.try_number, unopened.reply_to) == (
        "r1",
        "load",
        2,
        "zonda.events.s1",
    )
    assert "holds the keys of scope 'tenant:team-a', not those of this message's scope 'tenant:team-b'" in (
        unopened.error
    )
    assert "zonda secrets worker-keys --tenant team-b" in unopened.error


def test_without_tenant_queues_every_request_is_sealed_for_the_shared_workers() -> None:
    sealer = Sealer([KEY], per_tenant=False)
    sealed = seal_request(request(), sealer)
    assert sealed["scope"] == SHARED
    assert open_request(sealed, WorkerKeys(worker_keys([KEY], SHARED))) == request()
    assert isinstance(open_request(sealed, tenant_keys("team-a")), Unopened)


def test_the_fields_in_clear_are_never_what_runs() -> None:
    sealed = seal_request(request(), Sealer([KEY], per_tenant=True))
    altered = {**sealed, "run_id": "someone-elses-run", "reply_to": "zonda.events.elsewhere"}
    assert open_request(altered, tenant_keys("team-a")) == request()
    rescoped = {**sealed, "scope": "tenant:team-b"}
    assert isinstance(open_request(rescoped, tenant_keys("team-b")), Unopened), "the scope is sealed in"


def test_an_altered_or_unsealed_request_is_not_run() -> None:
    sealed = seal_request(request(), Sealer([KEY], per_tenant=True))
    tampered = {**sealed, "sealed": sealed["sealed"][:-8] + "AAAAAAAA"}
    altered = open_request(tampered, tenant_keys("team-a"))
    assert isinstance(altered, Unopened) and "or the message was altered on the way" in altered.error
    unsealed = open_request(encode(request()), tenant_keys("team-a"))
    assert isinstance(unsealed, Unopened) and unsealed.error.startswith("UnsealedRequest: ")
    assert "upgrade the schedulers" in unsealed.error and unsealed.run_id == "r1"
    with pytest.raises(ProtocolError, match="malformed task request"):
        open_request({"type": "SealedTaskRequest", "run_id": "r1"}, tenant_keys("team-a"))
    with pytest.raises(ProtocolError, match="expected a sealed task request"):
        open_request({"type": "TaskStarted"}, tenant_keys("team-a"))


def test_workers_keep_opening_requests_while_the_server_keys_rotate() -> None:
    new = Fernet.generate_key()
    before = seal_request(request(), Sealer([KEY], per_tenant=True))
    after = seal_request(request(), Sealer([new, KEY], per_tenant=True))
    both = tenant_keys("team-a", new, KEY)
    assert open_request(before, both) == request() and open_request(after, both) == request()
    stale = open_request(after, tenant_keys("team-a", KEY))
    assert isinstance(stale, Unopened)
    assert "none of this worker's keys of scope 'tenant:team-a' opens this message" in stale.error
    assert "zonda secrets worker-keys --tenant team-a` again" in stale.error


def test_keys_are_derived_per_scope_and_server_key() -> None:
    other = Fernet.generate_key()
    assert derive_key(KEY, "tenant:a") == derive_key(KEY, "tenant:a")
    assert len({derive_key(KEY, "tenant:a"), derive_key(KEY, "tenant:b"), derive_key(other, "tenant:a")}) == 3
    assert len(derive_key(KEY, SHARED)) == 32 and derive_key(KEY, SHARED) not in base64.urlsafe_b64decode(KEY)
    scope, _, keys = worker_keys([other, KEY], SHARED).rpartition(":")
    printed = keys.split(",")
    assert scope == SHARED
    assert [base64.urlsafe_b64decode(k) for k in printed] == [
        derive_key(other, SHARED),
        derive_key(KEY, SHARED),
    ]


def test_a_worker_without_keys_is_told_how_to_get_them() -> None:
    with pytest.raises(ConfigError, match="zonda secrets worker-keys"):
        WorkerKeys("")
    for malformed in (
        "not-a-key",
        "shared:not-a-key",
        "shared:",
        base64.urlsafe_b64encode(bytes(32)).decode(),
    ):
        with pytest.raises(ConfigError, match="ZONDA_WORKER_KEYS must be"):
            WorkerKeys(malformed)
    assert WorkerKeys(worker_keys([KEY], tenant_scope("team-a"))).scope == "tenant:team-a"
    assert [scope_tenant(s) for s in (tenant_scope("team-a"), SHARED, SCHEDULERS)] == ["team-a", None, None]


# Reports, from workers to schedulers -------------------------------------------------------------


def finished(ok: bool = True) -> TaskFinished:
    output = ArtifactRef("json", 22, data=b'{"rows": "report-data"}') if ok else None
    return TaskFinished("r1", "load", -1, 2, ok=ok, started_at=NOW, ended_at=NOW, output=output, error=None)


def test_a_report_crosses_the_broker_sealed_for_its_workers_scope() -> None:
    sealed = seal_report(finished(), tenant_keys("team-a"))
    assert "report-data" not in json.dumps(sealed) and base64.b64encode(
        b"report-data"
    ).decode() not in json.dumps(sealed)
    assert open_report(sealed, Sealer([KEY], per_tenant=True)) == (finished(), "tenant:team-a")
    started = TaskStarted("r1", "load", -1, 2, NOW, 42, worker="w@h")
    assert open_report(seal_report(started, tenant_keys("team-a")), Sealer([KEY], True))[0] == started


def test_schedulers_open_reports_sealed_with_any_server_key_and_pass_them_on_in_their_own_scope() -> None:
    new = Fernet.generate_key()
    scheduler = Sealer([new, KEY], per_tenant=True)
    assert open_report(seal_report(finished(), tenant_keys("team-a", KEY)), scheduler)[0] == finished()
    passed_on = forwarded_report(finished(), scheduler)
    assert open_report(passed_on, Sealer([new], True)) == (finished(), SCHEDULERS)


def test_a_forged_altered_or_unsealed_report_is_refused() -> None:
    scheduler = Sealer([KEY], per_tenant=True)
    other_server = WorkerKeys(worker_keys([Fernet.generate_key()], tenant_scope("team-a")))
    posing = WorkerKeys("schedulers:" + worker_keys([KEY], SHARED).partition(":")[2])
    sealed = seal_report(finished(), tenant_keys("team-a"))
    for forged in (
        seal_report(finished(), other_server),
        seal_report(finished(), posing),
        {**sealed, "scope": "tenant:team-b"},
        {**sealed, "sealed": sealed["sealed"][:-8] + "AAAAAAAA"},
    ):
        with pytest.raises(ProtocolError, match="no server key opens"):
            open_report(forged, scheduler)
    with pytest.raises(ProtocolError, match="expected a sealed report"):
        open_report(encode(finished()), scheduler)
    request_as_report = {
        "type": "SealedReport",
        "scope": "shared",
        "sealed": seal_request(request(), Sealer([KEY], False))["sealed"],
    }
    with pytest.raises(ProtocolError, match="no server key opens"):
        open_report(request_as_report, scheduler)


def test_only_a_failure_may_come_from_a_worker_of_another_scope() -> None:
    started = TaskStarted("r1", "load", -1, 2, NOW, 42)
    assert foreign_report(finished(), "tenant:team-a", "tenant:team-a") == ""
    assert foreign_report(finished(), SCHEDULERS, "tenant:team-a") == "", "passed on by a scheduler"
    assert foreign_report(finished(), "tenant:team-b", None) == "", "an attempt the executor does not track"
    assert foreign_report(finished(ok=False), "tenant:team-b", "tenant:team-a") == "", "could not open it"
    for forged in (finished(), started):
        reason = foreign_report(forged, "tenant:team-b", "tenant:team-a")
        assert (
            "r1/load/-1 try 2 was sealed for scope 'tenant:team-b'" in reason and "'tenant:team-a'" in reason
        )


def heartbeat(*running: RunningTask, queues: tuple[str, ...] = ("team-a.default",)) -> WorkerHeartbeat:
    return WorkerHeartbeat("celery@w1", "h1", queues, 2, running, NOW, NOW, cpus=2)


A_TASK = RunningTask("run-a-1", "load", -1, 2, "zonda.events.s1", "team-a/etl")
B_TASK = RunningTask("run-b-1", "train", -1, 1, "zonda.events.s1", "team-b/ml")


def test_a_heartbeat_crosses_the_broker_sealed_naming_no_attempt() -> None:
    beat = heartbeat(A_TASK)
    sealed = seal_heartbeat(beat, tenant_keys("team-a"))
    assert "run-a-1" not in json.dumps(sealed) and "team-a/etl" not in json.dumps(sealed)
    assert open_heartbeat(sealed, Sealer([KEY], per_tenant=True)) == (beat, "tenant:team-a")


def test_a_forged_altered_or_unsealed_heartbeat_is_refused() -> None:
    scheduler = Sealer([KEY], per_tenant=True)
    sealed = seal_heartbeat(heartbeat(A_TASK), tenant_keys("team-a"))
    other_server = WorkerKeys(worker_keys([Fernet.generate_key()], tenant_scope("team-a")))
    for forged in (
        seal_heartbeat(heartbeat(A_TASK), other_server),
        {**sealed, "scope": "tenant:team-b"},
        {**sealed, "sealed": sealed["sealed"][:-8] + "AAAAAAAA"},
        {**seal_report(finished(), tenant_keys("team-a")), "type": "SealedHeartbeat"},
    ):
        with pytest.raises(ProtocolError, match="no server key opens"):
            open_heartbeat(forged, scheduler)
    with pytest.raises(ProtocolError, match="expected a sealed heartbeat"):
        open_heartbeat(heartbeat(A_TASK).to_json(), scheduler)
    with pytest.raises(ProtocolError, match="expected a sealed report"):
        open_report(sealed, scheduler)


def test_a_tenants_worker_speaks_for_its_own_tenants_queues_and_attempts_only() -> None:
    claims = heartbeat(A_TASK, B_TASK, queues=("team-a.default", "team-b.default", "default", "team-ab.gpu"))
    unknown: dict[tuple[str, str, int], str] = {}
    assert vouched_for(claims, "tenant:team-a", unknown.get) == heartbeat(A_TASK, queues=("team-a.default",))
    assert vouched_for(claims, SHARED, unknown.get) == claims, "the shared workers serve every tenant"
    unnamed = heartbeat(replace(A_TASK, dag_id=""))
    assert vouched_for(unnamed, "tenant:team-a", unknown.get).running == (), (
        "an attempt of no DAG is no one's"
    )


def test_an_attempt_this_scheduler_sent_counts_only_from_its_own_scopes_workers() -> None:
    posing = replace(B_TASK, dag_id="team-a/etl")  # team-b's attempt, under a DAG id of team-a's
    sent = {B_TASK.ti_key: "tenant:team-b", A_TASK.ti_key: "tenant:team-a"}
    assert vouched_for(heartbeat(A_TASK, posing), "tenant:team-a", sent.get).running == (A_TASK,)
    assert vouched_for(heartbeat(B_TASK), "tenant:team-b", sent.get).running == (B_TASK,)
    assert vouched_for(heartbeat(A_TASK, B_TASK), SHARED, sent.get).running == (), "sent to tenants' workers"


def test_what_a_worker_claimed_beyond_its_scope_is_named_for_the_log() -> None:
    claims = heartbeat(A_TASK, B_TASK, queues=("team-a.default", "team-b.default"))
    kept = vouched_for(claims, "tenant:team-a", {}.get)
    assert unvouched(claims, kept) == (
        f"queues team-b.default; attempts {B_TASK.dag_id}/{B_TASK.run_id}/{B_TASK.task_id}"
        f"[{B_TASK.map_index}] try {B_TASK.try_number}"
    )
    assert unvouched(claims, vouched_for(claims, SHARED, {}.get)) == "", "nothing dropped, nothing to say"
