"""`zonda secrets`: a tenant's secrets and connections on the server, and the operator's key commands.

`set`, `list` and `delete` go through the API with the caller's token. `new-key`, `worker-keys` and
`rotate` are maintenance of the server's Fernet keys: `worker-keys` derives the Celery workers' keys
from them; `rotate` works on the metadata DB directly (ZONDA_DB_URL, ZONDA_SECRET_KEYS), like
`zonda db upgrade`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from cryptography.fernet import Fernet
from rich.table import Table
from rich.text import Text

from zonda.api.schemas.secrets import SecretKind, SecretRecord
from zonda.cli import connect, render
from zonda.cli.connect import Json, Server, Tenant

if TYPE_CHECKING:
    from collections.abc import Sequence


app = typer.Typer(
    help="A tenant's secrets and connections (write-only: values are never shown), and key rotation.",
    no_args_is_help=True,
)


@app.command("set")
def set_secret(
    name: str,
    tenant: Tenant = None,
    kind: Annotated[
        SecretKind,
        typer.Option("--kind", help="connection: a URI or a JSON object, e.g. postgresql://u:p@h/db"),
    ] = SecretKind.SECRET,
    value: Annotated[
        str | None, typer.Option("--value", help="The value [default: read from stdin, or asked for]")
    ] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    server: Server = None,
) -> None:
    """Create or replace a secret (tenant admins). Tasks read it with zonda.secret(NAME)."""
    text = value if value is not None else _read_value()
    with connect.client(server) as client:
        record = client.set_secret(name, text, kind, description, tenant)
    render.note(f"{record.kind} {record.name} of tenant {record.tenant_id} set")


@app.command("list")
def list_secrets(
    tenant: Tenant = None,
    as_json: Json = False,
    server: Server = None,
) -> None:
    """The tenant's secrets: names, kinds, descriptions, never values."""
    with connect.client(server) as client:
        found = client.secrets(tenant)
    render.print_json(found) if as_json else _secrets_view(found)


@app.command("delete")
def delete_secret(name: str, tenant: Tenant = None, server: Server = None) -> None:
    """Delete a secret (tenant admins); runs started afterwards no longer get it."""
    with connect.client(server) as client:
        client.delete_secret(name, tenant)
    render.note(f"secret {name} deleted")


@app.command("new-key")
def new_key() -> None:
    """Print a new Fernet key, to put first in ZONDA_SECRET_KEYS (see docs/security.md)."""
    print(Fernet.generate_key().decode())


@app.command("worker-keys")
def worker_keys(
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant", help="For `zonda worker --tenant T` (with ZONDA_TENANT_QUEUES on the schedulers)"
        ),
    ] = None,
) -> None:
    """Print ZONDA_WORKER_KEYS for Celery workers: the keys that open their task messages, derived from
    ZONDA_SECRET_KEYS (run it where that is set; the workers never get it). See docs/security.md."""
    from zonda.auth.keys import secret_keys
    from zonda.executors.celery.sealing import SHARED, tenant_scope
    from zonda.executors.celery.sealing import worker_keys as derive

    print(derive(secret_keys(connect.settings()), tenant_scope(tenant) if tenant else SHARED))


@app.command("rotate")
def rotate() -> None:
    """Re-encrypt every stored secret with the newest key of ZONDA_SECRET_KEYS (on the DB directly)."""
    from zonda.db.engine import make_engine
    from zonda.scheduler.wakeup import make_waker
    from zonda.services.context import Services
    from zonda.services.secrets import rotate_secrets

    settings = connect.settings()
    engine = make_engine(settings.resolved_db_url)
    try:
        count = rotate_secrets(Services(engine=engine, settings=settings, waker=make_waker(settings, engine)))
    finally:
        engine.dispose()
    render.note(f"{count} secret(s) re-encrypted with the newest key; older keys may now be removed")


def _read_value() -> str:
    """The value from stdin (one trailing newline dropped), or asked for without echo on a terminal."""
    if sys.stdin.isatty():
        return str(typer.prompt("value", hide_input=True))
    text = sys.stdin.read()
    return text[:-1] if text.endswith("\n") else text


def _secrets_view(found: Sequence[SecretRecord]) -> None:
    table = Table("name", "kind", "description", "updated", box=None)
    for s in found:
        table.add_row(s.name, s.kind.value, s.description, render.when(s.updated_at))
    render.console().print(table if found else Text("no secrets"))
