"""`zonda login`, `zonda tokens`, `zonda users`, `zonda tenants`, `zonda members`: who may do what."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.table import Table

from zonda.api.schemas.identity import TenantCreate, TenantPatch, TokenCreate, UserCreate
from zonda.cli import connect, render
from zonda.cli.connect import Json, Server
from zonda.core.permissions import Role
from zonda.services.bootstrap import write_token_file

tokens_app = typer.Typer(help="Your API tokens: create, list, revoke.", no_args_is_help=True)
users_app = typer.Typer(help="Users (superusers create them).", no_args_is_help=True)
tenants_app = typer.Typer(
    help="Tenants: teams with their own DAGs, secrets, pools and quotas.", no_args_is_help=True
)
members_app = typer.Typer(help="Who has which role in a tenant.", no_args_is_help=True)

Folders = Annotated[list[Path] | None, typer.Option("--dags", help="A DAG folder of the tenant; repeat.")]
MaxTasks = Annotated[int | None, typer.Option("--max-running-tasks", min=0, help="Quota: tasks at once.")]
MaxRuns = Annotated[int | None, typer.Option("--max-active-runs", min=0, help="Quota: runs at once.")]


def login(
    user: Annotated[str, typer.Option("--user", "-u", prompt=True, help="User id.")],
    server: Server = None,
) -> None:
    """Log in with a password; the session token is saved in ZONDA_HOME/token for the next commands."""
    password = typer.prompt("Password", hide_input=True)
    with connect.client(server) as client:
        session = client.login(user, password)
    path = connect.settings().home / "token"
    write_token_file(path, session.token)
    render.note(f"logged in as {user} until {session.expires_at:%Y-%m-%d %H:%M} UTC; token saved in {path}")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="What the token is for, e.g. ci-deploy.")],
    days: Annotated[
        int | None, typer.Option("--expires-in-days", min=1, help="Lifetime; default: none.")
    ] = None,
    as_json: Json = False,
    server: Server = None,
) -> None:
    """Create an API token; its value is printed this once (use it as ZONDA_TOKEN)."""
    with connect.client(server) as client:
        created = client.create_token(TokenCreate(name=name, expires_in_days=days))
    if as_json:
        render.print_json(created)
        return
    render.note(f"token {created.token_id} ({name}): {created.token}\nIt is shown only now; store it safely.")


@tokens_app.command("list")
def tokens_list(as_json: Json = False, server: Server = None) -> None:
    """Your API tokens (never their values)."""
    with connect.client(server) as client:
        found = client.tokens()
    _show(
        found,
        as_json,
        ["token_id", "name", "user_id", "created_at", "expires_at", "last_used_at", "revoked_at"],
    )


@tokens_app.command("revoke")
def tokens_revoke(token_id: str, server: Server = None) -> None:
    """Revoke an API token at once."""
    with connect.client(server) as client:
        client.revoke_token(token_id)
    render.note(f"token {token_id} revoked")


@users_app.command("create")
def users_create(
    user: str,
    superuser: Annotated[bool, typer.Option("--superuser", help="A platform admin.")] = False,
    password: Annotated[bool, typer.Option("--password", help="Ask for a password (for UI logins).")] = False,
    as_json: Json = False,
    server: Server = None,
) -> None:
    """Create a user (superusers). Without --password the user works with API tokens only."""
    secret = typer.prompt("Password", hide_input=True, confirmation_prompt=True) if password else None
    with connect.client(server) as client:
        created = client.create_user(UserCreate(user_id=user, password=secret, superuser=superuser))
    render.print_json(created) if as_json else render.note(f"user {user} created")


@users_app.command("list")
def users_list(as_json: Json = False, server: Server = None) -> None:
    """Users you can see, with their roles."""
    with connect.client(server) as client:
        found = client.users()
    _show(found, as_json, ["user_id", "superuser", "disabled", "roles"])


@tenants_app.command("create")
def tenants_create(
    tenant: str,
    dags: Folders = None,
    max_running_tasks: MaxTasks = None,
    max_active_runs: MaxRuns = None,
    as_json: Json = False,
    server: Server = None,
) -> None:
    """Create a tenant with its DAG folders and quotas (superusers)."""
    spec = TenantCreate(
        tenant_id=tenant,
        dag_folders=[str(f.resolve()) for f in dags or []],
        max_running_tasks=max_running_tasks,
        max_active_runs=max_active_runs,
    )
    with connect.client(server) as client:
        created = client.create_tenant(spec)
    render.print_json(created) if as_json else render.note(f"tenant {tenant} created")


@tenants_app.command("list")
def tenants_list(as_json: Json = False, server: Server = None) -> None:
    """Tenants you belong to (superusers: all)."""
    with connect.client(server) as client:
        found = client.tenants()
    _show(found, as_json, ["tenant_id", "dag_folders", "max_running_tasks", "max_active_runs", "created_at"])


@tenants_app.command("update")
def tenants_update(
    tenant: str,
    dags: Folders = None,
    max_running_tasks: MaxTasks = None,
    max_active_runs: MaxRuns = None,
    server: Server = None,
) -> None:
    """Change a tenant's DAG folders or quotas (superusers); options not given stay as they are."""
    changes: dict[str, object] = {"max_running_tasks": max_running_tasks, "max_active_runs": max_active_runs}
    if dags:
        changes["dag_folders"] = [str(f.resolve()) for f in dags]
    patch = TenantPatch.model_validate({k: v for k, v in changes.items() if v is not None})
    with connect.client(server) as client:
        client.update_tenant(tenant, patch)
    render.note(f"tenant {tenant} updated")


@tenants_app.command("delete")
def tenants_delete(tenant: str, server: Server = None) -> None:
    """Delete a tenant that has no DAGs or runs left (superusers)."""
    with connect.client(server) as client:
        client.delete_tenant(tenant)
    render.note(f"tenant {tenant} deleted")


@members_app.command("set")
def members_set(
    tenant: str,
    user: str,
    role: Annotated[Role, typer.Argument(help="viewer, operator or admin.")],
    server: Server = None,
) -> None:
    """Give a user a role in a tenant (the tenant's admins)."""
    with connect.client(server) as client:
        client.set_member(tenant, user, role)
    render.note(f"{user} is {role.value} of {tenant}")


@members_app.command("remove")
def members_remove(tenant: str, user: str, server: Server = None) -> None:
    """Take a user out of a tenant (the tenant's admins)."""
    with connect.client(server) as client:
        client.remove_member(tenant, user)
    render.note(f"{user} removed from {tenant}")


def _show(rows: Sequence[BaseModel], as_json: bool, columns: list[str]) -> None:
    """Rows as JSON, or as a table of `columns`."""
    if as_json:
        render.print_json(rows)
        return
    table = Table(*columns)
    for row in rows:
        data = row.model_dump(mode="json")
        table.add_row(*("" if data[c] is None else str(data[c]) for c in columns))
    render.console().print(table)
