"""Tenant isolation pieces: Celery queues per tenant, tenants' uids on a machine, workers' environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from zonda.errors import ConfigError
from zonda.executors.celery.routing import RouteInfo, hooks_from, route
from zonda.executors.local.tenancy import TenantUsers, scrub_environment
from zonda.worker.protocol import TaskRequest

ROOT = os.geteuid() == 0


def request(dag_id: str, queue: str = "default", pool: str | None = None) -> TaskRequest:
    return TaskRequest("r1", dag_id, "t", -1, 1, 1, "", "", "", "", "", queue=queue, pool=pool)


@pytest.mark.parametrize(
    ("dag_id", "queue", "pool", "tenant_queues", "expected"),
    [
        ("team-a/etl", "default", None, True, "team-a.default"),
        ("team-a/etl", "gpu", None, True, "team-a.gpu"),
        ("team-a/etl", "default", "big", True, "team-a.big-queue"),
        ("team-a/etl", "default", None, False, "default"),
        ("etl", "default", None, True, "default"),
    ],
)
def test_tenant_routing_prefixes_the_queue_with_the_tenant(
    dag_id: str, queue: str, pool: str | None, tenant_queues: bool, expected: str
) -> None:
    req = request(dag_id, queue, pool)
    hooks = hooks_from({"big": "big-queue"}, tenant_queues)
    assert route(req, RouteInfo.of(req), hooks) == expected


def users(tmp_path: Path, uids: dict[str, int] | None = None, base: int | None = None) -> TenantUsers:
    return TenantUsers(tmp_path / "home", [tmp_path / "home" / "artifacts"], uids, base)


def test_without_uids_tenants_share_the_servers_user(tmp_path: Path) -> None:
    tenants = users(tmp_path)
    tenants.prepare()
    identity = tenants.identity("team-a")
    assert not tenants.enforced
    assert (identity.uid, identity.gid, identity.home) == (None, None, None)


@pytest.mark.skipif(ROOT, reason="the refusal is for servers that do not run as root")
def test_uids_without_root_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs the server to run as root"):
        users(tmp_path, base=47000).prepare()


@pytest.mark.skipif(not ROOT, reason="tenant folders are handed to other uids only by root")
def test_uids_are_given_once_kept_across_restarts_and_never_shared(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    first = users(tmp_path, {"team-x": 47001}, base=47000)
    given = {t: first.identity(t).uid for t in ("team-a", "team-x", "team-b")}
    assert given == {"team-a": 47002, "team-x": 47001, "team-b": 47003}
    again = users(tmp_path, {"team-x": 47001}, base=47000)
    assert [again.identity(t).uid for t in ("team-b", "team-a")] == [47003, 47002]
    assert json.loads((tmp_path / "home" / "tenant-uids.json").read_text()) == {
        "team-a": 47002,
        "team-b": 47003,
    }
    folder = tmp_path / "home" / "artifacts" / "team-b"
    assert (folder.stat().st_uid, folder.stat().st_mode & 0o777) == (47003, 0o700)


@pytest.mark.skipif(not ROOT, reason="tenant folders are handed to other uids only by root")
def test_a_tenant_without_a_uid_is_refused_when_only_some_are_listed(tmp_path: Path) -> None:
    tenants = users(tmp_path, {"team-a": 47001})
    with pytest.raises(ConfigError, match="tenant 'team-b' has no OS user"):
        tenants.identity("team-b")


@pytest.mark.skipif(not ROOT, reason="the checks run only where uids can be given")
def test_shared_uids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="its own uid"):
        users(tmp_path, {"team-a": 47001, "team-b": 47001}).prepare()


def test_workers_drop_the_servers_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ZONDA_SECRET_KEYS", "ZONDA_DB_URL", "ZONDA_TOKEN", "ZONDA_SECRET_API", "ZONDA_BROKER_URL"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("ZONDA_WORKERS", "2")
    scrub_environment()
    assert os.environ["ZONDA_WORKERS"] == "2"
    assert not {
        "ZONDA_SECRET_KEYS",
        "ZONDA_DB_URL",
        "ZONDA_TOKEN",
        "ZONDA_SECRET_API",
        "ZONDA_BROKER_URL",
    } & set(os.environ)
