"""The `zonda` command: local runs in-process, remote commands against a real server on a free port."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner, Result

from tests.identity import admin_token
from tests.integration.dag_seed import load_dags, seed_dag
from tests.integration.server import ZONDA, ZondaServer, free_port, serve_in_thread
from zonda.api.app import create_app
from zonda.api.schemas import DagRecord, RunPage, RunRecord
from zonda.cli.main import app
from zonda.db.engine import make_engine, read_txn, write_txn
from zonda.db.migrate import upgrade
from zonda.db.schema import runs, task_instances
from zonda.executors.celery.codec import Unopened, open_request, seal_request
from zonda.executors.celery.sealing import Sealer, WorkerKeys, tenant_scope, worker_keys
from zonda.scheduler.wakeup import NullWaker
from zonda.settings import Settings
from zonda.worker.logs import log_path
from zonda.worker.protocol import TaskRequest

LOCAL_DAG = """
from zonda import dag, task

@task
def numbers(n: int) -> list[int]:
    return list(range(n))

@task
def total(xs: list[int]) -> int:
    return sum(xs)

@task
def check(t: int, label: str) -> str:
    print("total is", t)
    return f"{label}={t}"

@dag
def sums(n: int, label: str = "sum"):
    check(total(numbers(n)), label)
"""

FAILING_DAG = """
from zonda import dag, task

@task
def boom() -> None:
    raise ValueError("the model diverged")

@task
def after(x: None) -> None:
    pass

@dag
def broken():
    after(boom())
"""

TWO_DAGS = """
from zonda import dag, task

@task
def hello() -> str:
    return "hi"

@dag
def first():
    hello()

@dag
def second():
    hello()
"""

SERVER_DAGS = """
from zonda import dag, task

@task
def extract(n: int) -> list[int]:
    return list(range(n))

@task
def report(xs: list[int], label: str) -> None:
    print(label, xs)

@dag
def etl(n: int, label: str = "x"):
    report(extract(n), label)

@dag(schedule="@daily", start_date="2026-01-01")
def nightly(size: int = 3):
    report(extract(size), "nightly")
"""

runner = CliRunner()


def zonda(*args: str) -> Result:
    return runner.invoke(app, list(args))


def dag_file(tmp_path: Path, source: str, name: str = "pipeline.py") -> str:
    path = tmp_path / name
    path.write_text(source)
    return str(path)


# zonda run ---------------------------------------------------------------------------------------------


def test_run_succeeds_and_shows_every_task(tmp_path: Path) -> None:
    result = zonda("run", dag_file(tmp_path, LOCAL_DAG), "--param", "n=4")
    assert result.exit_code == 0, result.output
    for task_id in ("numbers", "total", "check"):
        assert task_id in result.stdout
    assert "success" in result.stdout
    assert "running" in result.stderr  # live progress, one line per state change


def test_run_json_prints_only_the_run_record(tmp_path: Path) -> None:
    result = zonda(
        "run", dag_file(tmp_path, LOCAL_DAG), "-p", "n=4", "-p", "label=42", "--key", "k1", "--json"
    )
    assert result.exit_code == 0, result.output
    record = RunRecord.model_validate_json(result.stdout)
    assert (record.dag_id, record.state, record.key) == ("sums", "success", "k1")
    assert record.params == {"n": 4, "label": "42"}  # a str param keeps "42" as text
    assert [t.task_id for t in record.tasks] == ["numbers", "total", "check"]
    assert {t.state for t in record.tasks} == {"success"}
    assert result.stderr == ""


def test_a_failing_run_exits_1_and_shows_the_error(tmp_path: Path) -> None:
    result = zonda("run", dag_file(tmp_path, FAILING_DAG))
    assert result.exit_code == 1, result.output
    assert "the model diverged" in result.output
    assert "upstream_failed" in result.stdout


@pytest.mark.parametrize(
    ("params", "named"),
    [(["n=many"], "n"), ([], "n"), (["n=1", "colour=red"], "colour"), (["n"], "n")],
    ids=["wrong-type", "missing", "unknown", "no-equals"],
)
def test_bad_params_exit_2_naming_the_param(tmp_path: Path, params: list[str], named: str) -> None:
    options = [arg for p in params for arg in ("--param", p)]
    result = zonda("run", dag_file(tmp_path, LOCAL_DAG), *options)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")
    assert named in result.stderr


def test_a_file_with_two_dags_needs_dag(tmp_path: Path) -> None:
    path = dag_file(tmp_path, TWO_DAGS)
    result = zonda("run", path)
    assert result.exit_code == 2
    assert "first, second" in result.stderr
    assert "--dag" in result.stderr
    chosen = zonda("run", path, "--dag", "second", "--json")
    assert chosen.exit_code == 0, chosen.output
    assert json.loads(chosen.stdout)["dag_id"] == "second"
    assert "first, second" in zonda("run", path, "--dag", "third").stderr


def test_a_file_that_fails_to_import_shows_its_traceback(tmp_path: Path) -> None:
    result = zonda("run", dag_file(tmp_path, "import not_a_module_anywhere\n"))
    assert result.exit_code == 1
    assert "ModuleNotFoundError" in result.stderr
    assert "failed to import" in result.stderr


# Remote commands against a real server -------------------------------------------------------------------


@dataclass
class Server:
    url: str
    engine: Engine
    settings: Settings
    token: str

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return runner.invoke(app, [*args, "--server", self.url], env={"ZONDA_TOKEN": self.token}, input=input)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real uvicorn server in a thread, on a free port, over a fresh SQLite DB with two DAGs."""
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, db_url=f"sqlite:///{home / 'zonda.db'}")
    engine = make_engine(settings.resolved_db_url)
    upgrade(engine)
    for dag in load_dags(SERVER_DAGS, "/dags/etl.py").values():
        seed_dag(engine, dag, source=SERVER_DAGS, fileloc="/dags/etl.py")
    with serve_in_thread(create_app(settings, engine=engine, waker=NullWaker())) as url:
        yield Server(url, engine, settings, admin_token(engine, settings))
    engine.dispose()


def test_trigger_json_returns_the_queued_run(server: Server) -> None:
    result = server("trigger", "etl", "--param", "n=3", "--param", "label=7", "--key", "user-1", "--json")
    assert result.exit_code == 0, result.output
    record = RunRecord.model_validate_json(result.stdout)
    assert (record.dag_id, record.state, record.trigger, record.key) == (
        "default/etl",
        "queued",
        "api",
        "user-1",
    )
    assert record.params == {"n": 3, "label": "7"}
    assert [t.task_id for t in record.tasks] == ["extract", "report"]


def test_trigger_errors_come_from_the_api(server: Server) -> None:
    bad = server("trigger", "etl", "--param", "n=lots")
    assert bad.exit_code == 1
    assert bad.stderr.startswith("error: bad params")
    assert "n:" in bad.stderr
    unknown = server("trigger", "nope")
    assert unknown.exit_code == 1
    assert "DAG 'default/nope' not found" in unknown.stderr


def test_runs_list_and_show(server: Server) -> None:
    run_id = RunRecord.model_validate_json(
        server("trigger", "etl", "-p", "n=1", "--key", "k-list", "--json").stdout
    ).run_id
    listed = server("runs", "list", "--key", "k-list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [r.run_id for r in RunPage.model_validate_json(listed.stdout).runs] == [run_id]
    table = server("runs", "list", "--dag", "etl")
    assert table.exit_code == 0
    assert run_id in table.stdout
    shown = server("runs", "show", run_id)
    assert shown.exit_code == 0, shown.output
    assert run_id in shown.stdout
    assert "extract" in shown.stdout
    assert RunRecord.model_validate_json(server("runs", "show", run_id, "--json").stdout).run_id == run_id
    missing = server("runs", "show", "nope")
    assert (missing.exit_code, "not found" in missing.stderr) == (1, True)


def test_runs_clear_a_queued_run_is_refused(server: Server) -> None:
    run_id = json.loads(server("trigger", "etl", "-p", "n=1", "--json").stdout)["run_id"]
    result = server("runs", "clear", run_id, "--task", "extract", "--downstream")
    assert result.exit_code == 1
    assert "still queued" in result.stderr


def test_runs_mark_reaches_the_api_and_checks_the_state(server: Server) -> None:
    run_id = json.loads(server("trigger", "etl", "-p", "n=1", "--json").stdout)["run_id"]
    bad = server("runs", "mark", run_id, "extract", "--state", "running")
    assert bad.exit_code == 2 and "'running' is not one of" in bad.output
    refused = server("runs", "mark", run_id, "extract", "--state", "failed")
    assert refused.exit_code == 1 and "still queued" in refused.stderr


def test_dags_list_pause_and_unpause(server: Server) -> None:
    listed = server("dags", "list")
    assert listed.exit_code == 0, listed.output
    assert "etl" in listed.stdout
    assert "nightly" in listed.stdout
    assert server("dags", "pause", "nightly").exit_code == 0
    dags = {
        d["dag_id"]: DagRecord.model_validate(d) for d in json.loads(server("dags", "list", "--json").stdout)
    }
    assert dags["default/nightly"].paused
    assert server("dags", "unpause", "nightly").exit_code == 0
    assert not DagRecord.model_validate(json.loads(server("dags", "list", "--json").stdout)[1]).paused
    assert server("dags", "pause", "nope").exit_code == 1
    errors = server("dags", "errors")
    assert (errors.exit_code, errors.stdout.strip()) == (0, "no import errors")


def test_logs_prints_the_attempt_log(server: Server) -> None:
    run_id = json.loads(server("trigger", "etl", "-p", "n=1", "--json").stdout)["run_id"]
    with write_txn(server.engine) as conn:
        conn.execute(
            update(task_instances)
            .where(task_instances.c.run_id == run_id, task_instances.c.task_id == "extract")
            .values(try_number=1)
        )
    path = Path(log_path(str(server.settings.logs_dir), "default/etl", run_id, "extract", -1, 1))
    path.parent.mkdir(parents=True)
    path.write_text("extracting 1 row\n")
    result = server("logs", run_id, "extract")
    assert (result.exit_code, result.stdout) == (0, "extracting 1 row\n")
    assert server("logs", run_id, "extract", "--try", "2").exit_code == 1


def test_backfill_creates_runs(server: Server) -> None:
    result = server("backfill", "nightly", "--from", "2026-02-01", "--to", "2026-02-03")
    assert result.exit_code == 0, result.output
    assert "created 3 runs" in result.stdout
    again = server("backfill", "nightly", "--from", "2026-02-01", "--to", "2026-02-03", "--json")
    assert json.loads(again.stdout) == {"run_ids": [], "skipped_existing": 3}
    assert server("backfill", "nightly", "--from", "yesterday", "--to", "2026-02-03").exit_code == 2


def _finish_run_with_key(engine: Engine, key: str, state: str) -> None:
    """Plays the scheduler: waits for the run with `key` and finishes it and its tasks."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with read_txn(engine) as conn:
            run_id = conn.execute(select(runs.c.run_id).where(runs.c.key == key)).scalar()
        if run_id:
            break
        time.sleep(0.02)
    with write_txn(engine) as conn:
        conn.execute(update(task_instances).where(task_instances.c.run_id == run_id).values(state=state))
        conn.execute(update(runs).where(runs.c.run_id == run_id).values(state=state))


@pytest.mark.parametrize(("state", "code"), [("success", 0), ("failed", 1)])
def test_trigger_wait_follows_the_run_to_its_end(server: Server, state: str, code: int) -> None:
    key = f"wait-{state}"
    finisher = threading.Thread(target=_finish_run_with_key, args=(server.engine, key, state))
    finisher.start()
    result = server("trigger", "etl", "-p", "n=2", "--key", key, "--wait", "--json")
    finisher.join()
    assert result.exit_code == code, result.output
    assert RunRecord.model_validate_json(result.stdout).state == state


def test_server_from_the_environment(server: Server) -> None:
    result = runner.invoke(
        app, ["dags", "list", "--json"], env={"ZONDA_SERVER": server.url, "ZONDA_TOKEN": server.token}
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 2


def test_an_unreachable_server_says_how_to_fix_it() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = zonda("runs", "list", "--server", url)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: cannot reach the Zonda server at {url}: start it with `zonda up` or pass --server URL"
    )


def test_login_saves_a_session_token_that_later_commands_use(server: Server, tmp_path: Path) -> None:
    created = server("users", "create", "ana", "--password", input="correct horse\ncorrect horse\n")
    assert created.exit_code == 0, created.output
    server("members", "set", "default", "ana", "viewer")
    env = {"ZONDA_HOME": str(tmp_path), "ZONDA_TOKEN": "", "ZONDA_SERVER": server.url}
    bad = runner.invoke(app, ["login", "--user", "ana"], env=env, input="wrong\n")
    assert bad.exit_code == 1 and "wrong password" in bad.stderr
    login = runner.invoke(app, ["login", "--user", "ana"], env=env, input="correct horse\n")
    assert login.exit_code == 0, login.output
    assert (tmp_path / "token").stat().st_mode & 0o777 == 0o600
    listed = runner.invoke(app, ["dags", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    refused = runner.invoke(app, ["trigger", "etl", "-p", "n=1"], env=env)
    assert refused.exit_code == 1 and "viewer" in refused.stderr


def test_tokens_create_list_and_revoke(server: Server) -> None:
    created = server("tokens", "create", "ci", "--json")
    assert created.exit_code == 0, created.output
    token = json.loads(created.stdout)
    listed = server("tokens", "list", "--json")
    assert token["token_id"] in listed.stdout and token["token"] not in listed.stdout
    assert server("tokens", "revoke", token["token_id"]).exit_code == 0
    env = {"ZONDA_TOKEN": token["token"], "ZONDA_SERVER": server.url}
    refused = runner.invoke(app, ["dags", "list"], env=env)
    assert refused.exit_code == 1 and "not valid" in refused.stderr


def test_tenants_are_created_and_listed_by_a_superuser(server: Server, tmp_path: Path) -> None:
    created = server("tenants", "create", "team-cli", "--dags", str(tmp_path), "--max-running-tasks", "3")
    assert created.exit_code == 0, created.output
    listed = json.loads(server("tenants", "list", "--json").stdout)
    team = next(t for t in listed if t["tenant_id"] == "team-cli")
    assert team["max_running_tasks"] == 3 and team["dag_folders"] == [str(tmp_path.resolve())]


def test_up_on_a_port_in_use_stops_at_once_and_says_why(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        up = subprocess.run(
            [ZONDA, "up", "--home", str(tmp_path / "home"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert up.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in up.stderr and "--port" in up.stderr
    assert "Zonda is starting" not in up.stdout


def test_a_second_up_on_the_same_home_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "two.py").write_text(TWO_DAGS)
    first = ZondaServer(tmp_path / "home", dags, f"sqlite:///{tmp_path / 'home' / 'zonda.db'}", workers=1)
    first.start(expect_dags=2)
    try:
        assert first.proc is not None
        second = subprocess.run(
            [ZONDA, "up", "--home", str(first.home), "--dags", str(dags), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert f"another `zonda up` (pid {first.proc.pid}) serves the home {first.home}" in second.stderr
        assert "--home" in second.stderr and "Zonda is starting" not in second.stdout
        assert first.client.get("/health").status_code == 200, "the first one goes on"
        first.stop()
        first.start(expect_dags=2)  # the lock ends with the process that held it
    finally:
        first.stop()


def test_an_unreachable_metadata_db_says_how_to_fix_it(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://zonda:s3cret@127.0.0.1:{free_port()}/zonda"
    result = runner.invoke(app, ["db", "upgrade"], env={"ZONDA_DB_URL": url, "ZONDA_HOME": str(tmp_path)})
    assert result.exit_code == 1
    error = result.stderr.strip()
    assert error.startswith("error: cannot reach the metadata DB postgresql+psycopg://zonda:***@127.0.0.1:")
    assert error.endswith("; start it, or fix ZONDA_DB_URL") and "s3cret" not in error
    assert "Traceback" not in result.output


def test_up_with_a_home_it_cannot_create_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = zonda("up", "--home", str(blocker / "home"), "--port", str(free_port()))
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(f"error: cannot create the folder {blocker / 'home'} (")
    assert "--home" in result.stderr and "Traceback" not in result.output


def test_up_with_a_dag_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    result = zonda("up", "--dags", str(tmp_path / "nowhere"), "--home", str(tmp_path / "home"))
    assert result.exit_code == 2
    words = " ".join(result.stderr.replace("│", " ").split())  # the message as one line, out of its box
    assert "Invalid value for '--dags'" in words and "does not exist" in words
    assert not (tmp_path / "home").exists()


def test_a_worker_with_server_credentials_in_its_environment_does_not_start() -> None:
    env = {
        "ZONDA_BROKER_URL": "redis://127.0.0.1:1/0",
        "ZONDA_DB_URL": "postgresql+psycopg://zonda:s3cret@db/zonda",
        "ZONDA_SECRET_KEYS": "a-key",
    }
    result = runner.invoke(app, ["worker", "-c", "1"], env=env)
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(
        "error: zonda worker does not start with ZONDA_DB_URL, ZONDA_SECRET_KEYS in its environment: the "
        "tasks it runs could read them."
    )
    assert "s3cret" not in result.output


def test_a_worker_without_the_keys_of_its_task_messages_does_not_start() -> None:
    result = runner.invoke(app, ["worker", "-c", "1"], env={"ZONDA_BROKER_URL": "redis://127.0.0.1:1/0"})
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(
        "error: zonda worker needs ZONDA_WORKER_KEYS to open its task messages"
    )
    assert "zonda secrets worker-keys --tenant T" in result.stderr


def test_worker_keys_open_the_messages_the_schedulers_seal_for_that_scope() -> None:
    new, old = Fernet.generate_key(), Fernet.generate_key()
    server_env = {"ZONDA_SECRET_KEYS": f"{new.decode()},{old.decode()}"}
    shared = runner.invoke(app, ["secrets", "worker-keys"], env=server_env)
    team_a = runner.invoke(app, ["secrets", "worker-keys", "--tenant", "team-a"], env=server_env)
    assert shared.exit_code == 0 and team_a.exit_code == 0
    assert len(team_a.stdout.strip().split(",")) == 2, "one key per server key, for rotation"
    request = TaskRequest("r1", "team-a/etl", "load", -1, 1, 1, "/code/x.py", "x", "/dags/etl.py", "l", "o")
    for per_tenant, printed in ((False, shared), (True, team_a)):
        sealed = seal_request(request, Sealer([new, old], per_tenant))
        assert open_request(sealed, WorkerKeys(printed.stdout.strip())) == request
    assert isinstance(
        open_request(seal_request(request, Sealer([new], False)), WorkerKeys(team_a.stdout)), Unopened
    )


def test_a_tenants_worker_with_another_tenants_keys_does_not_start() -> None:
    keys = worker_keys([Fernet.generate_key()], tenant_scope("team-b"))
    env = {"ZONDA_BROKER_URL": "redis://127.0.0.1:1/0", "ZONDA_WORKER_KEYS": keys}
    result = runner.invoke(app, ["worker", "-c", "1", "--tenant", "team-a"], env=env)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: zonda worker --tenant team-a holds the keys of scope 'tenant:team-b': give it those "
        "`zonda secrets worker-keys --tenant team-a` prints (ZONDA_WORKER_KEYS)"
    )
