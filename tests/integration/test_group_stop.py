"""A stop signal sent to `zonda up`'s whole process group, as systemd's stop (SIGTERM to every process
of the unit), `timeout` or a terminal's Ctrl-C (SIGINT) send it, stops Zonda as cleanly as one sent
to the main process: no task is failed for it, and a task cut short runs again on the next start."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.integration.server import ZondaServer

pytestmark = pytest.mark.slow

DAG = """
import time

from zonda import dag, task


@task(retries=0)
def long_step(lane: int) -> int:
    time.sleep(8)
    return lane


@dag
def long_one() -> None:
    for lane in range(3):
        long_step.with_options(task_id=f"long_{lane}")(lane)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_to_the_whole_group_fails_no_task(signum: signal.Signals, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "long_one.py").write_text(DAG)
    server = ZondaServer(tmp_path / "home", dags, f"sqlite:///{tmp_path / 'zonda.db'}", workers=3)
    server.start()
    try:
        run_id = server.trigger("long_one")
        server.wait_until(
            lambda: [t["state"] for t in server.run(run_id)["tasks"]] == ["running"] * 3,
            30,
            "3 tasks running",
        )
        signalled = time.monotonic()
        assert server.signal_group(signum) == 0
        took = time.monotonic() - signalled
        stopped = (server.home / "server.out").read_text(errors="replace")
        server.start()
        record = server.wait_run(run_id, timeout=60)
    finally:
        server.stop()

    assert record["state"] == "success"
    assert [(t["state"], t["try_number"]) for t in record["tasks"]] == [("success", 1)] * 3, record["tasks"]
    assert "exited with code" not in stopped, "a local worker died of the signal:\n" + stopped[-3000:]
    # The three busy workers get their 2 s of grace together, not one after another (6 s).
    assert took < 5, f"stopping took {took:.1f} s"
