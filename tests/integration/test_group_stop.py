"""A stop signal sent to `zonda up`'s whole process group, as systemd's stop (SIGTERM to every process
of the unit), `timeout` or a terminal's Ctrl-C (SIGINT) send it, stops Zonda as cleanly as one sent
to the main process: no task is failed for it, and a task cut short runs again on the next start."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.integration.server import ZondaServer

pytestmark = pytest.mark.slow

DAG = """
import time

from zonda import dag, task


@task(retries=0)
def long_step() -> str:
    time.sleep(4)
    return "done"


@dag
def long_one() -> None:
    long_step()
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_to_the_whole_group_fails_no_task(signum: signal.Signals, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "long_one.py").write_text(DAG)
    server = ZondaServer(tmp_path / "home", dags, f"sqlite:///{tmp_path / 'zonda.db'}", workers=2)
    server.start()
    try:
        run_id = server.trigger("long_one")
        server.wait_until(
            lambda: server.run(run_id)["tasks"][0]["state"] == "running", 30, "the task is running"
        )
        assert server.signal_group(signum) == 0
        stopped = (server.home / "server.out").read_text(errors="replace")
        server.start()
        record = server.wait_run(run_id, timeout=60)
    finally:
        server.stop()

    task = record["tasks"][0]
    assert (record["state"], task["state"], task["try_number"]) == ("success", "success", 1), task
    assert "exited with code" not in stopped, "a local worker died of the signal:\n" + stopped[-3000:]
