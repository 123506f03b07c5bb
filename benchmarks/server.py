"""Start and stop a fresh Zonda server for one benchmark configuration (temp home, free port, own DB)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from benchmarks import workloads

ROOT = Path(__file__).resolve().parent.parent
DAGS_FOLDER = Path(__file__).resolve().parent / "dags"
BENCH_DAGS = (workloads.ONBOARDING, workloads.ONBOARDING_R3, workloads.FANOUT_DAG, workloads.ONE_TASK)
PG_ADMIN_URL = os.environ.get("ZONDA_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
PG_SERVER = os.environ.get("ZONDA_BENCH_PG_SERVER", "postgres@127.0.0.1:5432")
START_TIMEOUT = 120.0


@dataclass
class Server:
    """A running server: its base URL, supervisor process, home folder and DB URL."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    home: Path
    db_url: str

    @property
    def token(self) -> str:
        """The admin API token the server wrote to its home on first start ("" until then)."""
        path = self.home / "token"
        return path.read_text().strip() if path.exists() else ""

    def client(self) -> httpx.Client:
        """An HTTP client of the workloads, authenticated as the server's admin."""
        return workloads.client(self.url, self.token)

    @property
    def database_url(self) -> str:
        """The server's metadata DB: its PostgreSQL URL, or the SQLite file in its home."""
        return self.db_url or f"sqlite:///{self.home / 'zonda.db'}"

    @property
    def pid(self) -> int:
        return self.process.pid


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one benchmark run; dropped afterwards. Yields its psycopg URL."""
    name = f"zonda_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlalchemy_url(libpq_url: str) -> str:
    return libpq_url.replace("postgresql://", "postgresql+psycopg://", 1)


@contextlib.contextmanager
def running_server(
    db_url: str,
    workers: int,
    keep_home: bool = False,
    extra_env: Callable[[Path], Mapping[str, str]] | None = None,
    logs_to: Path | None = None,
) -> Iterator[Server]:
    """A fresh server on a temp home and a free port, ready (healthy, benchmark DAGs parsed).

    `extra_env(home)` adds to the server's environment (e.g. ZONDA_EXECUTOR=celery and the broker).
    `logs_to`: a folder that gets the output of the server and of its workers (`*.out` in its home)
    when it stops, so that an outlier can be looked into after the temp home is gone."""
    home = Path(tempfile.mkdtemp(prefix="zonda-bench-"))
    env = {**os.environ, **(extra_env(home) if extra_env is not None else {})}
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "benchmarks._server",
        *("--home", str(home), "--dags", str(DAGS_FOLDER), "--db-url", db_url),
        *("--port", str(port), "--workers", str(workers)),
    ]
    with (home / "server.out").open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", port, process, home, db_url)
    try:
        wait_ready(server)
        yield server
    finally:
        stop(server)
        if logs_to is not None:
            logs_to.mkdir(parents=True, exist_ok=True)
            for log in home.glob("*.out"):
                shutil.copy(log, logs_to / log.name)
        if not keep_home:
            shutil.rmtree(home, ignore_errors=True)


def wait_ready(server: Server, timeout: float = START_TIMEOUT) -> None:
    """Until /health says ok and every benchmark DAG is listed; RuntimeError with the log otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server_log(server)}")
        if server.token and _ready(server):
            return
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout:.0f} s:\n{server_log(server)}")


def _ready(server: Server) -> bool:
    try:
        with server.client() as client:
            health = client.get("/health").json()
            if health.get("status") != "ok":
                return False
            listed = {d["dag_id"] for d in client.get("/api/v1/dags").json()}
    except (httpx.HTTPError, ValueError, TypeError):
        return False
    return set(BENCH_DAGS) <= listed


def stop(server: Server, timeout: float = 30.0) -> None:
    """SIGTERM the supervisor (it stops its children), SIGKILL after `timeout`."""
    if server.process.poll() is not None:
        return
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def server_log(server: Server, tail: int = 4000) -> str:
    try:
        return (server.home / "server.out").read_text(errors="replace")[-tail:]
    except OSError:
        return ""
