"""Sealed task messages (ADR 0015): what a request shows on the broker, and who can open it."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from cryptography.fernet import Fernet

from zonda.errors import ConfigError
from zonda.executors.celery.codec import ProtocolError, Unopened, encode, open_request, seal_request
from zonda.executors.celery.sealing import SHARED, Opener, Sealer, derive_key, tenant_scope, worker_keys
from zonda.worker.protocol import TaskRequest

KEY = Fernet.generate_key()


def request(dag_id: str = "team-a/etl", **changes: object) -> TaskRequest:
    base = TaskRequest(
        run_id="r1",
        dag_id=dag_id,
        task_id="load",
        map_index=-1,
        try_number=2,
        dag_version=1,
        code_uri="/code/abc.py",
        code_hash="abc",
        fileloc="/dags/etl.py",
        log_path="/logs/attempt-2.log",
        output_path="team-a/etl/r1/load/2",
        params={"customer": "acme-params-value"},
        secrets={"DB_PASSWORD": "hunter2-secret-value"},
        api_token="zondarun_r1_signature-value",
        reply_to="zonda.events.s1",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def tenant_opener(tenant: str, *keys: bytes) -> Opener:
    return Opener(worker_keys(list(keys or (KEY,)), tenant_scope(tenant)))


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
    opener = tenant_opener("team-a")
    assert open_request(seal_request(mine, sealer), opener) == mine
    unopened = open_request(seal_request(theirs, sealer), opener)
    assert isinstance(unopened, Unopened)
    assert (unopened.run_id, unopened.task_id, unopened.try_number, unopened.reply_to) == (
        "r1",
        "load",
        2,
        "zonda.events.s1",
    )
    assert "no key for messages of scope 'tenant:team-b'" in unopened.error
    assert "zonda secrets worker-keys --tenant team-b" in unopened.error


def test_without_tenant_queues_every_request_is_sealed_for_the_shared_workers() -> None:
    sealer = Sealer([KEY], per_tenant=False)
    sealed = seal_request(request(), sealer)
    assert sealed["scope"] == SHARED
    assert open_request(sealed, Opener(worker_keys([KEY], SHARED))) == request()
    assert isinstance(open_request(sealed, tenant_opener("team-a")), Unopened)


def test_the_fields_in_clear_are_never_what_runs() -> None:
    sealed = seal_request(request(), Sealer([KEY], per_tenant=True))
    altered = {**sealed, "run_id": "someone-elses-run", "reply_to": "zonda.events.elsewhere"}
    assert open_request(altered, tenant_opener("team-a")) == request()
    rescoped = {**sealed, "scope": "tenant:team-b"}
    assert isinstance(open_request(rescoped, tenant_opener("team-b")), Unopened), "the scope is sealed in"


def test_an_altered_or_unsealed_request_is_not_run() -> None:
    sealed = seal_request(request(), Sealer([KEY], per_tenant=True))
    tampered = {**sealed, "sealed": sealed["sealed"][:-8] + "AAAAAAAA"}
    assert isinstance(open_request(tampered, tenant_opener("team-a")), Unopened)
    unsealed = open_request(encode(request()), tenant_opener("team-a"))
    assert isinstance(unsealed, Unopened) and unsealed.error.startswith("UnsealedRequest: ")
    assert "upgrade the schedulers" in unsealed.error and unsealed.run_id == "r1"
    with pytest.raises(ProtocolError, match="malformed task request"):
        open_request({"type": "SealedTaskRequest", "run_id": "r1"}, tenant_opener("team-a"))
    with pytest.raises(ProtocolError, match="expected a sealed task request"):
        open_request({"type": "TaskStarted"}, tenant_opener("team-a"))


def test_workers_keep_opening_requests_while_the_server_keys_rotate() -> None:
    new = Fernet.generate_key()
    before = seal_request(request(), Sealer([KEY], per_tenant=True))
    after = seal_request(request(), Sealer([new, KEY], per_tenant=True))
    both = tenant_opener("team-a", new, KEY)
    assert open_request(before, both) == request() and open_request(after, both) == request()
    assert isinstance(open_request(after, tenant_opener("team-a", KEY)), Unopened)


def test_keys_are_derived_per_scope_and_server_key() -> None:
    other = Fernet.generate_key()
    assert derive_key(KEY, "tenant:a") == derive_key(KEY, "tenant:a")
    assert len({derive_key(KEY, "tenant:a"), derive_key(KEY, "tenant:b"), derive_key(other, "tenant:a")}) == 3
    assert len(derive_key(KEY, SHARED)) == 32 and derive_key(KEY, SHARED) not in base64.urlsafe_b64decode(KEY)
    printed = worker_keys([other, KEY], SHARED).split(",")
    assert [base64.urlsafe_b64decode(k) for k in printed] == [
        derive_key(other, SHARED),
        derive_key(KEY, SHARED),
    ]


def test_a_worker_without_keys_is_told_how_to_get_them() -> None:
    with pytest.raises(ConfigError, match="zonda secrets worker-keys"):
        Opener("")
    with pytest.raises(ConfigError, match="ZONDA_WORKER_KEYS must be"):
        Opener("not-a-key")
