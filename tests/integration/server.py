"""A real `zonda up` in a subprocess, for integration tests (real scheduler, workers, API)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ZONDA = str(Path(sys.executable).with_name("zonda"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ZondaServer:
    """Starts, stops, kills and restarts one server over a given home, DAG folder and DB."""

    def __init__(
        self, home: Path, dags: Path, db_url: str, workers: int = 4, env: dict[str, str] | None = None
    ):
        self.home, self.dags, self.db_url, self.workers = home, dags, db_url, workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "ZONDA_DB_URL": db_url, "ZONDA_PARSE_INTERVAL": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._seen = "nothing"
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def start(self, expect_dags: int = 1) -> None:
        args = [ZONDA, "up", "--dags", str(self.dags), "--home", str(self.home), "--port", str(self.port)]
        self.home.mkdir(parents=True, exist_ok=True)
        log = (self.home / "server.out").open("ab")
        self.proc = subprocess.Popen(
            [*args, "--workers", str(self.workers)],
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        try:
            self.wait_until(lambda: self._ready(expect_dags), 60, "server ready")
        except AssertionError as exc:
            output = (self.home / "server.out").read_text(errors="replace")[-3000:]
            raise AssertionError(
                f"{exc}; it last answered {self._seen}; server.out ends:\n{output}"
            ) from None

    @property
    def token(self) -> str:
        """The admin's API token, written by the server's first start into its home."""
        return (self.home / "token").read_text().strip()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        self.proc = None

    def signal_group(self, signum: int) -> int:
        """Send `signum` to the server's whole process group, as a terminal's Ctrl-C or systemd's stop
        does, and wait for it to exit; returns its exit code."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signum)
        code = self.proc.wait(60)
        self.proc = None
        self.wait_until(self._port_free, 30, "port released")
        return code

    def kill(self) -> None:
        """SIGKILL the whole server (the supervisor; its children die with it)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None
        self.wait_until(self._port_free, 30, "port released")

    def trigger(self, dag_id: str, params: dict[str, Any] | None = None, key: str | None = None) -> str:
        """Trigger a run; a DAG id without a tenant is one of the `default` tenant."""
        dag_id = dag_id if "/" in dag_id else f"default/{dag_id}"
        response = self.client.post(f"/api/v1/dags/{dag_id}/runs", json={"params": params or {}, "key": key})
        assert response.status_code == 201, response.text
        return str(response.json()["run_id"])

    def run(self, run_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/runs/{run_id}")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def wait_run(self, run_id: str, timeout: float = 60) -> dict[str, Any]:
        self.wait_until(
            lambda: self.run(run_id)["state"] in ("success", "failed"), timeout, f"run {run_id} ends"
        )
        return self.run(run_id)

    def log(self, run_id: str, task_id: str, **query: Any) -> str:
        response = self.client.get(f"/api/v1/runs/{run_id}/tasks/{task_id}/logs", params=query)
        response.raise_for_status()
        return response.text

    @staticmethod
    def wait_until(check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for: {what}")

    def _ready(self, expect_dags: int) -> bool:
        assert self.proc is not None and self.proc.poll() is None, "server exited; see server.out in its home"
        if not self._authenticated():
            return False
        health = self.client.get("/health")
        dags = self.client.get("/api/v1/dags")
        self._seen = f"/health {health.status_code} {health.text[:300]}, /api/v1/dags {dags.status_code} " + (
            f"with {len(dags.json())} DAG(s)" if dags.is_success else dags.text[:300]
        )
        return bool(health.json()["schedulers"]) and dags.is_success and len(dags.json()) >= expect_dags

    def _authenticated(self) -> bool:
        """Send the admin's token from now on, once the first start has written it."""
        if "Authorization" not in self.client.headers:
            if not (self.home / "token").exists():
                return False
            self.client.headers["Authorization"] = f"Bearer {self.token}"
        return True

    def _port_free(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) != 0


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """A real uvicorn server for `app` in a thread of this process, on a free port; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert uv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        uv.should_exit = True
        thread.join(10)
        sock.close()
