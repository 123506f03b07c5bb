"""A task of tenant A cannot obtain tenant B's secrets or artifacts: a real `zonda up` with real worker
processes, two tenants created through the API, and a probe task of team-a that tries every channel
(the API with its own run token, files by path, its process's environment and module globals).

As root (here and in CI) the server gives each tenant its own OS user (ZONDA_TENANT_UID_BASE), so the
file channel is closed by the OS; without root only the API and environment channels are asserted.
Tenants' users must be able to read Python: where this environment's interpreter sits in root's
private home, the server runs on the system's interpreter of the same version with this environment's
packages (a throw-away venv in /tmp), as a deployment would install Python where every user can read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration import server as server_module
from tests.integration.server import ZondaServer

ROOT = os.geteuid() == 0
UID_BASE = 47000
SECRET_B = "bravo-secret-of-team-b-4711"
SECRET_A = "alpha-secret-of-team-a-0815"

DEFAULT_DAG = """
from zonda import dag, task

@task
def hello() -> str:
    return "hello"

@dag
def hello_dag() -> None:
    hello()
"""

PRODUCER = """
import os
import sys

import zonda
from zonda import dag, task

@task
def make() -> dict:
    value = zonda.secret("token")
    print("making team-b's artifact")
    os.environ["LEAKED_BY_TEAM_B"] = value  # what a careless task leaves in its process
    sys.modules["os"].leaked_by_team_b = value
    return {"uid": os.getuid(), "pid": os.getpid(), "blob": "b" * 10000}

@dag
def produce() -> None:
    make()
"""

PROBE = """
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

import zonda
from zonda import dag, task


def status(path: str) -> int:
    ctx = zonda.context()
    request = urllib.request.Request(ctx.api_url + path, headers={"Authorization": "Bearer " + ctx.api_token})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def attempt(path: str) -> str:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as f:
                f.read(1)
        return "read"
    except OSError as exc:
        return type(exc).__name__


def holds(value: object, digest: str) -> bool:
    return isinstance(value, str) and hashlib.sha256(value.encode()).hexdigest() == digest


@task
def probe(b_run: str, paths: str, secret_sha: str) -> dict:
    ctx = zonda.context()
    calls = {
        "own run": f"/api/v1/runs/{ctx.run_id}",
        "b secrets": "/api/v1/tenants/team-b/secrets",
        "b run": f"/api/v1/runs/{b_run}",
        "b task": f"/api/v1/runs/{b_run}/tasks/make",
        "b output": f"/api/v1/runs/{b_run}/tasks/make/output",
        "b log": f"/api/v1/runs/{b_run}/tasks/make/logs",
    }
    modules = [
        f"{name}.{attr}"
        for name, module in list(sys.modules.items())
        for attr, value in list(getattr(module, "__dict__", {}).items())
        if holds(value, secret_sha)
    ]
    return {
        "api": {name: status(path) for name, path in calls.items()},
        "files": {name: attempt(path) for name, path in json.loads(paths).items()},
        "environ": [name for name, value in os.environ.items() if holds(value, secret_sha)],
        "modules": modules,
        "server credentials": sorted(n for n in os.environ if n in ("ZONDA_SECRET_KEYS", "ZONDA_DB_URL")),
        "uid": os.getuid(),
        "pid": os.getpid(),
        "own secret": zonda.secret("token"),
        "token given": ctx.api_token.startswith("zondarun_"),
    }

HOME = "@HOME@"
AT_IMPORT = {  # what the DAG file's top-level code reaches, in the DAG processor's parse child
    "uid": os.getuid(),
    "server credentials": sorted(n for n in os.environ if n in ("ZONDA_SECRET_KEYS", "ZONDA_DB_URL")),
    "files": {
        name: attempt(os.path.join(HOME, *path))
        for name, path in {
            "secret.key": ["secret.key"],
            "zonda.db": ["zonda.db"],
            "admin token": ["token"],
            "b code folder": ["code", "team-b"],
        }.items()
    },
}

@dag(description=json.dumps(AT_IMPORT))
def isolation_probe(b_run: str = "", paths: str = "{}", secret_sha: str = "") -> None:
    probe(b_run, paths, secret_sha)
"""


@dataclass
class Tenants:
    server: ZondaServer
    home: Path


def _readable_by_all(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in path.resolve().parents)


def _zonda_for_all_users(folder: Path) -> str:
    """A `zonda` command whose Python every user can read: this one, or the system's with these packages."""
    paths = sysconfig.get_paths()
    if _readable_by_all(Path(paths["stdlib"])):
        return server_module.ZONDA
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists() or not _readable_by_all(Path(paths["purelib"])):
        pytest.skip(f"no Python {system.name} that tenants' OS users can read (this one is in {sys.prefix})")
    subprocess.run([str(system), "-m", "venv", "--without-pip", str(folder)], check=True)
    site = next(folder.glob("lib/python*/site-packages"))
    (site / "zonda-env.pth").write_text(f"import site; site.addsitedir({paths['purelib']!r})\n")
    script = folder / "bin" / "zonda"
    launcher = (
        "import sys\nfrom zonda.cli.main import main\nif __name__ == '__main__':\n    sys.exit(main())\n"
    )
    script.write_text(f"#!{folder / 'bin' / 'python'}\n{launcher}")
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def tenants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tenants]:
    # Tenants' users must reach ZONDA_HOME, their DAG folders and Python, so these live outside
    # pytest's private folder.
    scratch = Path(tempfile.mkdtemp(prefix="zonda-isolation-", dir="/tmp"))
    scratch.chmod(0o755)
    started: list[ZondaServer] = []
    try:
        yield _start(scratch, tmp_path, monkeypatch, started)
    finally:
        for server in started:
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _start(
    scratch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[ZondaServer]
) -> Tenants:
    """`zonda up` with tenants team-a (the probe) and team-b (a task that makes an artifact)."""
    if ROOT:
        monkeypatch.setattr(server_module, "ZONDA", _zonda_for_all_users(scratch / "python"))
    home, dags = scratch / "home", scratch / "dags" / "default"
    dags.mkdir(parents=True)
    (dags / "hello.py").write_text(DEFAULT_DAG)
    env = {"ZONDA_TENANT_UID_BASE": str(UID_BASE)} if ROOT else {}
    server = ZondaServer(home, dags, f"sqlite:///{home / 'zonda.db'}", workers=1, env=env)
    started.append(server)
    server.start()
    for tenant, source in (("team-a", PROBE.replace("@HOME@", str(home))), ("team-b", PRODUCER)):
        folder = scratch / "dags" / tenant
        folder.mkdir()
        (folder / "dag.py").write_text(source)
        created = server.client.post(
            "/api/v1/tenants", json={"tenant_id": tenant, "dag_folders": [str(folder)]}
        )
        assert created.status_code == 201, created.text
    for tenant, value in (("team-a", SECRET_A), ("team-b", SECRET_B)):
        put = server.client.put(f"/api/v1/tenants/{tenant}/secrets/token", json={"value": value})
        assert put.status_code in (200, 201), put.text
    server.wait_until(lambda: {"team-a/isolation_probe", "team-b/produce"} <= _dag_ids(server), 60, "DAGs")
    return Tenants(server, home)


def _dag_ids(server: ZondaServer) -> set[str]:
    return {d["dag_id"] for d in server.client.get("/api/v1/dags").json()}


def _output(server: ZondaServer, run_id: str, task_id: str) -> Any:
    response = server.client.get(f"/api/v1/runs/{run_id}/tasks/{task_id}/output")
    assert response.status_code == 200, response.text
    return json.loads(response.content)


def _succeeded(server: ZondaServer, run_id: str) -> None:
    record = server.wait_run(run_id, 90)
    assert record["state"] == "success", [t.get("error") for t in record["tasks"]]


def test_a_task_of_team_a_cannot_reach_team_bs_secret_or_artifacts(tenants: Tenants) -> None:
    server, home = tenants.server, tenants.home
    b_run = server.trigger("team-b/produce")
    _succeeded(server, b_run)
    made = server.client.get(f"/api/v1/runs/{b_run}/tasks/make").json()
    artifact = made["output"]["uri"]
    assert artifact and artifact.startswith(str(home / "artifacts" / "team-b")), made["output"]
    b_code = next((home / "code" / "team-b").glob("*.py"))
    b_log = next((home / "logs" / "team-b").rglob("*.log"))
    paths = {
        "b artifact": artifact,
        "b code": str(b_code),
        "b log": str(b_log),
        "b artifacts folder": str(home / "artifacts" / "team-b"),
        "secret.key": str(home / "secret.key"),
        "zonda.db": str(home / "zonda.db"),
        "admin token": str(home / "token"),
        "home listing": str(home),
    }
    params = {
        "b_run": b_run,
        "paths": json.dumps(paths),
        "secret_sha": hashlib.sha256(SECRET_B.encode()).hexdigest(),
    }
    a_run = server.trigger("team-a/isolation_probe", params)
    _succeeded(server, a_run)
    seen = _output(server, a_run, "probe")

    # (a) the API, with the run's own token: its own run is visible, nothing of team-b is.
    assert seen["token given"]
    assert seen["api"] == {
        "own run": 200,
        "b secrets": 404,
        "b run": 404,
        "b task": 404,
        "b output": 404,
        "b log": 404,
    }
    # (c) the environment and module globals: team-b's task left its secret in its own process only.
    assert seen["environ"] == [] and seen["modules"] == []
    assert seen["server credentials"] == []
    assert seen["own secret"] == SECRET_A
    made_by = _output(server, b_run, "make")
    assert seen["pid"] != made_by["pid"], "a worker ran tasks of two tenants"

    # (b) files by path: closed by the OS when each tenant has its own user.
    if not ROOT:
        pytest.skip("the server does not run as root, so tenants share its OS user: file access not asserted")
    assert seen["files"] == dict.fromkeys(paths, "PermissionError")
    assert made_by["uid"] != seen["uid"] and 0 not in (made_by["uid"], seen["uid"])
    assert UID_BASE < seen["uid"] <= UID_BASE + 3
    assert stat.S_IMODE(home.stat().st_mode) == 0o711
    for name in ("secret.key", "zonda.db", "token"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
    folder = home / "artifacts" / "team-b"
    assert (folder.stat().st_uid, stat.S_IMODE(folder.stat().st_mode)) == (made_by["uid"], 0o700)


def test_a_dag_files_top_level_code_runs_without_the_servers_credentials_and_as_its_tenant(
    tenants: Tenants,
) -> None:
    """A DAG file is tenant code from its first line: the DAG processor imports it in a child that
    gets no server credentials and, with OS isolation on, runs as the tenant's user."""
    described = tenants.server.client.get("/api/v1/dags/team-a/isolation_probe").json()["description"]
    seen = json.loads(described)
    assert seen["server credentials"] == []
    if not ROOT:
        pytest.skip("the server does not run as root, so tenants share its OS user: file access not asserted")
    assert UID_BASE < seen["uid"] <= UID_BASE + 3
    assert seen["files"] == dict.fromkeys(seen["files"], "PermissionError")
