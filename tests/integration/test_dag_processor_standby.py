"""Two real `zonda dag-processor` processes on one PostgreSQL DB: one records the DAG files, the
other stands by, and takes over when the first is killed. Two that both worked raced for version
numbers, and the loser's unique-key error stayed as a file's import error."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from tests.integration.server import ZONDA
from tests.waiting import wait_until
from zonda.db.engine import make_engine, read_txn
from zonda.db.schema import dag_versions, import_errors

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DAG_FILE = """
from zonda import dag, task

@task
def say() -> int:
    return {n}

@dag
def d{n}() -> None:
    say()
"""


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[tuple[str, Engine]]:
    engine = make_engine(pg_url)
    yield pg_url, engine
    engine.dispose()


def test_a_second_processor_stands_by_and_takes_over_when_the_first_dies(
    pg_db: tuple[str, Engine], tmp_path: Path
) -> None:
    url, engine = pg_db
    folder = tmp_path / "dags"
    folder.mkdir()
    for n in range(20):
        (folder / f"d{n}.py").write_text(DAG_FILE.format(n=n))
    env = {
        **os.environ,
        "ZONDA_DB_URL": url,
        "ZONDA_HOME": str(tmp_path / "home"),
        "ZONDA_PARSE_INTERVAL": "0.3",
        "ZONDA_ADMIN_PASSWORD": "a-password-for-tests",
    }
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    processes = [start(folder, env, log) for log in logs]
    try:
        wait_until(
            lambda: versions(engine) == {f"default/d{n}": 1 for n in range(20)}, 60, "the first versions"
        )
        wait_until(lambda: sum("stands by to take over" in read(log) for log in logs) == 1, 60, "one standby")
        assert errors(engine) == []
        for n in range(20):
            with (folder / f"d{n}.py").open("a") as f:
                f.write("# second version\n")
        wait_until(
            lambda: versions(engine) == {f"default/d{n}": 2 for n in range(20)}, 60, "the second versions"
        )
        assert errors(engine) == []
        active = next(i for i, log in enumerate(logs) if "stands by" not in read(log))
        processes[active].send_signal(signal.SIGKILL)
        processes[active].wait(10)
        (folder / "d20.py").write_text(DAG_FILE.format(n=20))
        wait_until(lambda: versions(engine).get("default/d20") == 1, 60, "the standby to record a new file")
        assert "this DAG processor is now the active one" in read(logs[1 - active])
        assert errors(engine) == []
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)


def start(folder: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [ZONDA, "dag-processor", "--dags", str(folder)], env=env, stdout=out, stderr=out
        )


def read(log: Path) -> str:
    return log.read_text(errors="replace")


def versions(engine: Engine) -> dict[str, int]:
    with read_txn(engine) as conn:
        rows = conn.execute(select(dag_versions.c.dag_id, func.count()).group_by(dag_versions.c.dag_id))
        return {dag_id: count for dag_id, count in rows}


def errors(engine: Engine) -> list[str]:
    with read_txn(engine) as conn:
        return [str(e) for e in conn.execute(select(import_errors.c.error)).scalars()]
