"""Zonda as separate processes (API, DAG processor, schedulers, workers), for scale-out tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from tests.integration.server import ZONDA, ZondaServer
from zonda.auth.keys import secret_keys
from zonda.db.engine import make_engine, read_txn
from zonda.db.schema import runs
from zonda.executors.celery.sealing import SHARED, worker_keys
from zonda.executors.local.tenancy import server_only
from zonda.settings import Settings

DAGS = Path(__file__).with_name("dags")
_SESSIONS = text(
    "SELECT application_name, state, concat_ws(':', wait_event_type, wait_event) AS wait,"
    " round(extract(epoch FROM now() - xact_start)::numeric, 1) AS xact_age, left(query, 160) AS query"
    " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " ORDER BY xact_start NULLS LAST"
)


class Cluster(ZondaServer):
    """`zonda api` + `zonda dag-processor` + any number of `zonda scheduler` over one PostgreSQL DB."""

    def __init__(self, home: Path, dags: Path, db_url: str, env: dict[str, str] | None = None) -> None:
        super().__init__(home, dags, db_url, env=env)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start_process(
        self, name: str, *args: str, home: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `zonda ARGS` in a process group of its own (so `kill` takes its children too)."""
        self.home.mkdir(parents=True, exist_ok=True)
        log = (self.home / f"{name}.out").open("ab")
        command = [ZONDA, *args, *(["--home", str(self.home)] if home else [])]
        env = {**(env or self.env), "PGAPPNAME": name}  # names its sessions in pg_stat_activity
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_worker(self, name: str, queues: str = "default", concurrency: int = 4) -> None:
        """A `zonda worker` (Celery underneath) named `name`, without the server's credentials in its
        environment, as in production (it refuses to start with them), with the keys of the shared
        scope's task messages (`zonda secrets worker-keys`)."""
        env = {k: v for k, v in self.env.items() if not server_only(k) or k == "ZONDA_BROKER_URL"}
        keys = secret_keys(Settings(home=self.home, secret_keys=self.env.get("ZONDA_SECRET_KEYS", "")))
        env["ZONDA_WORKER_KEYS"] = worker_keys(keys, SHARED)
        self.start_process(
            name, "worker", "--queues", queues, "-c", str(concurrency), "--name", name, home=False, env=env
        )

    def start(self, expect_dags: int = 1, schedulers: int = 2) -> None:
        self.start_process("api", "api", "--port", str(self.port))
        self.start_process("dag-processor", "dag-processor", "--dags", str(self.dags))
        for i in range(schedulers):
            self.start_process(f"scheduler-{i}", "scheduler")
        try:
            self.wait_until(lambda: self._cluster_ready(expect_dags, schedulers), 60, "cluster ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; it last answered {self._seen}\n{self.diagnosis()}") from None

    def diagnosis(self) -> str:
        """What the DB's sessions wait for, and the end of each process's output: why a cluster
        did not get ready."""
        engine = make_engine(self.db_url)
        try:
            with read_txn(engine) as conn:
                sessions = conn.execute(_SESSIONS).all()
        finally:
            engine.dispose()
        lines = ["sessions (application, state, waiting on, transaction age s, query):"]
        lines += [f"  {s.application_name} {s.state} {s.wait} {s.xact_age} {s.query}" for s in sessions]
        for name in self.procs:
            out = (self.home / f"{name}.out").read_text(errors="replace").splitlines()[-5:]
            lines += [f"{name}.out ends:", *(f"  {line}" for line in out)]
        return "\n".join(lines)

    def wait_workers_listed(self, *names: str, timeout: float = 60) -> None:
        """Wait until these `zonda worker`s heartbeat: a worker does once all its slots are ready."""

        def listed() -> bool:
            workers = self.client.get("/api/v1/workers").json()
            return {w["worker_id"] for w in workers} >= {f"celery@{n}" for n in names}

        self.wait_until(listed, timeout, f"workers {', '.join(names)} listed from their heartbeats")

    def process_of(self, scheduler_id: str) -> str:
        """The name of the process of a scheduler (its id ends with its process id)."""
        pid = int(scheduler_id.rsplit("-", 1)[1])
        return next(name for name, p in self.procs.items() if p.pid == pid)

    def kill(self, name: str = "") -> None:
        """SIGKILL a process and everything it started (a worker's pool processes too)."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            proc.wait(30)
        self.procs.clear()

    def _cluster_ready(self, expect_dags: int, schedulers: int) -> bool:
        dead = [name for name, p in self.procs.items() if p.poll() is not None]
        assert not dead, f"{dead} exited; see their .out files in {self.home}"
        if not self._authenticated():
            return False
        health = self.client.get("/health").json()
        dags = self.client.get("/api/v1/dags").json()
        self._seen = f"/health {health}, {len(dags)} DAG(s)"
        return bool(health["schedulers"] >= schedulers) and len(dags) >= expect_dags


def celery_cluster(broker_url: str, db_url: str, tmp_path: Path) -> Cluster:
    """A cluster on the Celery executor, with the test DAGs, and artifacts and logs in a folder
    every process shares (as a shared store would be across machines)."""
    env = {
        "ZONDA_EXECUTOR": "celery",
        "ZONDA_BROKER_URL": broker_url,
        "ZONDA_HEARTBEAT_INTERVAL": "0.5",
        "ZONDA_TEST_MARKS": str(tmp_path / "marks"),
        "ZONDA_ARTIFACT_URL": str(tmp_path / "shared" / "artifacts"),
        "ZONDA_LOG_URL": str(tmp_path / "shared" / "logs"),
    }
    return Cluster(tmp_path / "home", shutil.copytree(DAGS, tmp_path / "dags"), db_url, env=env)


def owners(db_url: str, run_ids: list[str]) -> dict[str, str | None]:
    """The scheduler that holds each run's lease (None: no one)."""
    engine = make_engine(db_url)
    with read_txn(engine) as conn:
        rows = conn.execute(select(runs.c.run_id, runs.c.owner).where(runs.c.run_id.in_(run_ids)))
        found = {r.run_id: r.owner for r in rows}
    engine.dispose()
    return found


def assert_each_task_ran_once(records: list[dict[str, Any]], marks: Path) -> None:
    """Each task of the runs recorded exactly one execution (side effects, not states)."""
    for record in records:
        for task in record["tasks"]:
            lines = (marks / f"{record['run_id']}.{task['task_id']}").read_text().splitlines()
            assert len(lines) == 1, f"{task['task_id']} of {record['run_id']} ran {len(lines)} times"
