"""The `zonda` command: argument parsing only; `local` runs DAG files, `client` talks to a server."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from zonda.api.schemas import MarkRequest, MarkState, RunRecord
from zonda.cli import connect, identity, local, render
from zonda.cli import secrets as secrets_cli
from zonda.cli import usage as usage_cli
from zonda.cli.client import ApiError, ZondaClient
from zonda.cli.connect import Json, Server
from zonda.core.states import RunState
from zonda.errors import ParamsError, ZondaError


class _ZondaGroup(TyperGroup):
    """Shows Zonda's errors as `error: ...` with an exit code (2: bad usage or params; 1: the rest)."""

    def invoke(self, ctx: Any) -> Any:  # typer's (vendored) click.Context
        """Run the command; a ZondaError becomes `error: ...` and an exit code."""
        try:
            return super().invoke(ctx)
        except ParamsError as exc:
            render.fail(str(exc), exc.details, code=local.USAGE)
        except ApiError as exc:
            render.fail(str(exc), exc.details)
        except ZondaError as exc:
            render.fail(str(exc))


DagFolder = Annotated[Path | None, typer.Option("--dags", help="DAG folder.", file_okay=False, exists=True)]
"""A DAG folder to serve: it must exist (a typo would otherwise serve an empty folder)."""

app = typer.Typer(
    cls=_ZondaGroup,
    name="zonda",
    help="Zonda: run Python DAGs locally, or manage them on a Zonda server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="List, show and clear runs on the server.", no_args_is_help=True)
pools_app = typer.Typer(help="Pools: slot limits shared by the tasks that name them.", no_args_is_help=True)
dags_app = typer.Typer(help="List DAGs, pause or unpause them, show import errors.", no_args_is_help=True)
db_app = typer.Typer(help="Metadata DB maintenance.", no_args_is_help=True)
workers_app = typer.Typer(help="Celery workers, as seen in their heartbeats.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(dags_app, name="dags")
app.add_typer(db_app, name="db")
app.add_typer(pools_app, name="pools")
app.add_typer(workers_app, name="workers")
app.add_typer(secrets_cli.app, name="secrets")
usage_cli.register(app)
app.add_typer(identity.tokens_app, name="tokens")
app.add_typer(identity.users_app, name="users")
app.add_typer(identity.tenants_app, name="tenants")
app.add_typer(identity.members_app, name="members")
app.command("login")(identity.login)

Params = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (JSON values: 3, true, [1,2]); repeat.")
]
Key = Annotated[str | None, typer.Option("--key", help="Business key of the run, e.g. user-42.")]
PoolTenant = Annotated[
    str | None, typer.Option("--tenant", help="The pools' tenant [default: $ZONDA_TENANT or default]")
]


def main() -> None:
    """Console entry point `zonda`."""
    app()


# Local --------------------------------------------------------------------------------------------


@app.command()
def run(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="DAG file")],
    dag: Annotated[str | None, typer.Option("--dag", help="DAG id, if the file defines several.")] = None,
    param: Params = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Run a DAG file in this process (no server needed), showing each task's progress."""
    raise typer.Exit(local.run_file(file, dag, param or [], key, as_json))


@app.command()
def up(
    dags: DagFolder = None,
    home: Annotated[Path | None, typer.Option("--home", help="State folder (DB, logs).")] = None,
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535)] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Worker processes.")] = None,
) -> None:
    """Start a Zonda server on this machine: API and UI, scheduler, DAG processor, workers."""
    settings = connect.settings(dags_folder=dags, home=home, port=port, workers=workers)
    from zonda.standalone.supervisor import serve

    serve(settings)


@app.command("scheduler")
def scheduler_command(
    home: Annotated[Path | None, typer.Option("--home", help="State folder (logs, journals).")] = None,
    dags: Annotated[
        Path | None,
        typer.Option(
            "--dags", help="Also run the DAG processor on this folder.", file_okay=False, exists=True
        ),
    ] = None,
) -> None:
    """Run a scheduler in the foreground. Several can run at once against one PostgreSQL DB."""
    from zonda.standalone.components import run_dag_processor, run_scheduler
    from zonda.standalone.supervisor import prepare, run_beside

    settings = connect.settings(home=home, dags_folder=dags)
    prepare(settings)
    with run_beside(run_dag_processor, settings, enabled=dags is not None):
        run_scheduler(settings)


@app.command("api")
def api_command(
    home: Annotated[Path | None, typer.Option("--home", help="State folder.")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535)] = None,
) -> None:
    """Serve the HTTP API in the foreground (run as many as you like behind a load balancer)."""
    from zonda.standalone.components import run_api
    from zonda.standalone.supervisor import prepare

    settings = connect.settings(home=home, host=host, port=port)
    prepare(settings)
    run_api(settings)


@app.command("dag-processor")
def dag_processor_command(
    dags: DagFolder = None,
    home: Annotated[Path | None, typer.Option("--home", help="State folder (code store).")] = None,
) -> None:
    """Import every tenant's DAG files and record their versions, in the foreground (on PostgreSQL one
    works at a time: start a second one to take over if the first stops)."""
    from zonda.standalone.components import run_dag_processor
    from zonda.standalone.supervisor import prepare

    settings = connect.settings(home=home, dags_folder=dags)
    prepare(settings)
    run_dag_processor(settings)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the metadata DB (ZONDA_DB_URL, default SQLite under ZONDA_HOME) to this version."""
    from zonda.db.engine import make_engine
    from zonda.db.migrate import upgrade

    engine = make_engine(connect.settings().resolved_db_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    render.note(f"metadata DB {engine.url.render_as_string(hide_password=True)} is up to date")


# Runs ---------------------------------------------------------------------------------------------


@app.command()
def trigger(
    dag_id: str,
    param: Params = None,
    key: Key = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the run to finish; exit 1 if it fails.")
    ] = False,
    as_json: Json = False,
    server: Server = None,
) -> None:
    """Start a run of a DAG on the server."""
    with connect.client(server) as client:
        schema = client.dag(dag_id).params_schema if param else {}
        record = client.trigger(dag_id, local.parse_params(param or [], schema), key)
        if wait:
            record = _wait(client, record, None if as_json else render.TaskProgress())
    if as_json:
        render.print_json(record)
    elif wait:
        render.run_view(record)
    else:
        render.note(
            f"run {record.run_id} of {record.dag_id} is {record.state}; see `zonda runs show {record.run_id}`"
        )
    if wait and record.state != RunState.SUCCESS:
        raise typer.Exit(1)


@runs_app.command("list")
def runs_list(
    dag: Annotated[str | None, typer.Option("--dag", help="Only this DAG's runs.")] = None,
    key: Key = None,
    state: Annotated[str | None, typer.Option("--state", help="queued, running, success or failed.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
    cursor: Annotated[str | None, typer.Option("--cursor", help="next_cursor of the previous page.")] = None,
    as_json: Json = False,
    server: Server = None,
) -> None:
    """Runs, newest first."""
    with connect.client(server) as client:
        page = client.runs(dag_id=dag, key=key, state=state, limit=limit, cursor=cursor)
    render.print_json(page) if as_json else render.runs_view(page)


@runs_app.command("show")
def runs_show(run_id: str, as_json: Json = False, server: Server = None) -> None:
    """A run and its tasks."""
    with connect.client(server) as client:
        record = client.run(run_id)
    render.print_json(record) if as_json else render.run_view(record)


@runs_app.command("clear")
def runs_clear(
    run_id: str,
    task: Annotated[
        str | None, typer.Option("--task", help="Clear this task (default: failed ones).")
    ] = None,
    downstream: Annotated[
        bool, typer.Option("--downstream", help="Also clear its downstream tasks.")
    ] = False,
    server: Server = None,
) -> None:
    """Re-run a run's failed tasks, or one task (and its downstream tasks)."""
    with connect.client(server) as client:
        accepted = client.clear(run_id, task, downstream)
    render.note(f"clear of run {accepted.run_id} accepted (command {accepted.command_id})")


@runs_app.command("cancel")
def runs_cancel(run_id: str, server: Server = None) -> None:
    """Stop a run: running tasks are killed and fail, tasks not started are skipped."""
    with connect.client(server) as client:
        accepted = client.cancel(run_id)
    render.note(f"cancel of run {accepted.run_id} accepted (command {accepted.command_id})")


@runs_app.command("mark")
def runs_mark(
    run_id: str,
    task_id: str,
    state: Annotated[MarkState, typer.Option("--state", help="success or failed.")] = MarkState.SUCCESS,
    map_index: Annotated[
        int | None, typer.Option("--map-index", help="One instance of a mapped task (default: all).")
    ] = None,
    server: Server = None,
) -> None:
    """End a task by hand as success or failed (a running attempt is killed); downstream tasks follow."""
    with connect.client(server) as client:
        accepted = client.mark(run_id, task_id, MarkRequest(state=state, map_index=map_index))
    render.note(f"mark of {task_id} in run {accepted.run_id} accepted (command {accepted.command_id})")


@app.command()
def logs(
    run_id: str,
    task_id: str,
    try_number: Annotated[int | None, typer.Option("--try", min=1, help="Attempt (default: latest).")] = None,
    map_index: Annotated[int, typer.Option("--map-index", min=-1, help="Mapped instance.")] = -1,
    server: Server = None,
) -> None:
    """Print the log of a task's attempt."""
    with connect.client(server) as client:
        typer.echo(client.log(run_id, task_id, map_index, try_number), nl=False)


@app.command()
def backfill(
    dag_id: str,
    start: Annotated[str, typer.Option("--from", help="First date, e.g. 2026-01-01 (DAG's timezone).")],
    end: Annotated[str, typer.Option("--to", help="Last date (inclusive), e.g. 2026-01-31.")],
    as_json: Json = False,
    server: Server = None,
) -> None:
    """Create one run per scheduled time in [--from, --to] that has no run yet."""
    with connect.client(server) as client:
        result = client.backfill(dag_id, _date(start, "--from"), _date(end, "--to"))
    if as_json:
        render.print_json(result)
    else:
        render.note(f"created {len(result.run_ids)} runs; {result.skipped_existing} dates already had a run")


# DAGs ---------------------------------------------------------------------------------------------


@dags_app.command("list")
def dags_list(as_json: Json = False, server: Server = None) -> None:
    """The DAGs on the server."""
    with connect.client(server) as client:
        dags = client.dags()
    render.print_json(dags) if as_json else render.dags_view(dags)


@dags_app.command("errors")
def dags_errors(server: Server = None) -> None:
    """DAG files that failed to import, with their tracebacks."""
    with connect.client(server) as client:
        render.import_errors_view(client.import_errors())


@dags_app.command("pause")
def dags_pause(dag_id: str, server: Server = None) -> None:
    """Stop a DAG's schedule (it can still be triggered by hand)."""
    with connect.client(server) as client:
        client.set_paused(dag_id, True)
    render.note(f"DAG {dag_id} paused")


@dags_app.command("unpause")
def dags_unpause(dag_id: str, server: Server = None) -> None:
    """Resume a DAG's schedule."""
    with connect.client(server) as client:
        client.set_paused(dag_id, False)
    render.note(f"DAG {dag_id} unpaused")


# Pools --------------------------------------------------------------------------------------------


@pools_app.command("list")
def pools_list(tenant: PoolTenant = None, as_json: Json = False, server: Server = None) -> None:
    """The tenant's pools and their slots."""
    with connect.client(server) as client:
        pools = client.pools(tenant)
    render.print_json(pools) if as_json else render.pools_view(pools)


@pools_app.command("set")
def pools_set(
    name: str,
    slots: Annotated[int, typer.Option("--slots", min=0, help="Slots tasks in this pool may use at once.")],
    description: Annotated[str, typer.Option("--description")] = "",
    tenant: PoolTenant = None,
    server: Server = None,
) -> None:
    """Create a pool of the tenant or change its slots."""
    with connect.client(server) as client:
        pool = client.set_pool(name, slots, description, tenant)
    render.note(f"pool {pool.name} of tenant {pool.tenant_id} has {slots} slots")


@pools_app.command("delete")
def pools_delete(name: str, tenant: PoolTenant = None, server: Server = None) -> None:
    """Delete a pool of the tenant."""
    with connect.client(server) as client:
        client.delete_pool(name, tenant)
        owner = tenant or client.tenant
    render.note(f"pool {name} of tenant {owner} deleted")


# Workers ------------------------------------------------------------------------------------------


@app.command("worker")
def worker_command(
    queues: Annotated[
        str, typer.Option("--queues", "-Q", help="Comma-separated queues to take tasks from.")
    ] = "default",
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", min=1, help="Slot processes (default: one per CPU it may use)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Worker id (default: zonda-PID@HOST).")
    ] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            help="Serve only this tenant: consume TENANT.<queue> (ZONDA_TENANT_QUEUES) and refuse "
            "other tenants' tasks.",
        ),
    ] = None,
) -> None:
    """Run a Celery worker for the celery executor (needs ZONDA_BROKER_URL; never the DB URL)."""
    from zonda.executors.celery.routing import tenant_queue
    from zonda.executors.celery.worker import run_worker

    names = [q.strip() for q in queues.split(",") if q.strip()]
    if not names:
        raise typer.BadParameter("name at least one queue, e.g. --queues default,gpu", param_hint="--queues")
    if tenant is not None:
        names = [tenant_queue(tenant, name) for name in names]
    raise typer.Exit(run_worker(connect.settings(), names, concurrency, name, loglevel.upper(), tenant))


@workers_app.command("list")
def workers_list(as_json: Json = False, server: Server = None) -> None:
    """Workers that sent a heartbeat: queues, concurrency, running tasks, heartbeat age."""
    with connect.client(server) as client:
        workers = client.workers()
    render.print_json(workers) if as_json else render.workers_view(workers)


# Helpers ------------------------------------------------------------------------------------------


def _wait(client: ZondaClient, record: RunRecord, progress: render.TaskProgress | None) -> RunRecord:
    """Poll the run until it finishes, feeding task changes to `progress`."""
    delay = 0.05
    while not RunState(record.state).finished:
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
        record = client.run(record.run_id)
        if progress is not None:
            for task in record.tasks:
                progress.update(task)
    return record


def _date(text: str, option: str) -> datetime:
    """An ISO date or datetime from the command line (without an offset it is in the DAG's timezone)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date such as 2026-01-31 or 2026-01-31T12:00", param_hint=option
        ) from None
