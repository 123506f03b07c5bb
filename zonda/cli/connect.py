"""What every CLI command shares: settings from the environment, and the API client with the caller's token."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from zonda.cli.client import ZondaClient
from zonda.core.ids import DEFAULT_TENANT
from zonda.errors import ConfigError
from zonda.settings import Settings

Server = Annotated[
    str | None,
    typer.Option("--server", help="Server URL [default: $ZONDA_SERVER or http://127.0.0.1:8640]"),
]
Tenant = Annotated[
    str | None, typer.Option("--tenant", "-t", help="Tenant [default: $ZONDA_TENANT or default]")
]
Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]


def settings(**overrides: Any) -> Settings:
    """Settings from ZONDA_* variables, with the options given on the command line on top."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(f"bad setting: {exc}") from exc


def client(server: str | None) -> ZondaClient:
    """A client for --server, else ZONDA_SERVER, else the local default; with the caller's token."""
    found = settings()
    return ZondaClient(
        server or found.server_url, token=cli_token(found), tenant=found.tenant or DEFAULT_TENANT
    )


def cli_token(found: Settings) -> str:
    """ZONDA_TOKEN, else the token `zonda login` (or a first start) saved in ZONDA_HOME/token."""
    if found.token:
        return found.token
    path = found.home / "token"
    return path.read_text().strip() if path.exists() else ""
