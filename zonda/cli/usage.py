"""`zonda usage` and `zonda audit`: a tenant's bill and the audit log, read through the API.

Times such as `--since 30d` are parsed here (`zonda.core.usage.parse_since`) and sent as ISO dates
or datetimes; the server applies the caller's scoping.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from zonda.api.schemas.audit import AuditPage
from zonda.api.schemas.usage import UsageCounters, UsageReport
from zonda.cli import connect, render
from zonda.cli.connect import Json, Server
from zonda.core.usage import parse_since

Since = Annotated[
    str | None,
    typer.Option("--since", help="30d, 12h, 45m (back from now) or an ISO date such as 2026-01-01."),
]
AnyTenant = Annotated[
    str | None, typer.Option("--tenant", "-t", help="Only this tenant [default: every tenant you see]")
]


def register(app: typer.Typer) -> None:
    """Add `usage` and `audit` to the `zonda` command."""
    app.command("usage")(usage)
    app.command("audit")(audit)


def usage(
    tenant: AnyTenant = None,
    since: Since = "30d",
    until: Annotated[
        str | None, typer.Option("--until", help="Last UTC day included [default: today].")
    ] = None,
    as_json: Json = False,
    server: Server = None,
) -> None:
    """Task-, CPU- and GPU-seconds per tenant per UTC day, with totals (the basis of a bill)."""
    now = datetime.now(UTC)
    first = parse_since(since, now).date() if since else None
    last = parse_since(until, now).date() if until else None
    with connect.client(server) as client:
        report = client.usage(tenant, first, last)
    render.print_json(report) if as_json else usage_view(report)


def audit(
    tenant: AnyTenant = None,
    since: Since = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only this user's actions.")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="An action (secret.set) or a noun (secret).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="Entries per page.")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Continue after a previous page.")] = None,
    as_json: Json = False,
    server: Server = None,
) -> None:
    """The audit log, newest first: who did what, to what, when and from where (tenant admins)."""
    start = parse_since(since, datetime.now(UTC)) if since else None
    with connect.client(server) as client:
        page = client.audit(
            tenant=tenant, actor=actor, action=action, since=start, limit=limit, cursor=cursor
        )
    render.print_json(page) if as_json else audit_view(page)


def usage_view(report: UsageReport) -> None:
    """One row per tenant per day, then each tenant's total and the grand total."""
    table = Table(box=None, pad_edge=False, title=f"usage {report.since} .. {report.until} (UTC days)")
    for column in ("tenant", "day", "attempts", "task-hours", "CPU-hours", "GPU-hours"):
        table.add_column(column, justify="right" if column not in ("tenant", "day") else "left")
    for day in report.days:
        table.add_row(day.tenant_id, str(day.day), *_counters(day))
    if report.days:
        table.add_section()
        for total in report.tenants:
            table.add_row(Text(total.tenant_id, style="bold"), "total", *_counters(total))
        table.add_row(Text("all", style="bold"), "total", *_counters(report.total))
    render.console().print(table if report.days else Text("no usage in this period"))


def audit_view(page: AuditPage) -> None:
    """One line per entry (ids wrap rather than being cut; long details are cut); the next page's cursor."""
    table = Table(box=None, pad_edge=False)
    for column in ("at", "tenant", "actor", "action", "target", "origin"):
        table.add_column(column, overflow="fold")
    table.add_column("details", overflow="ellipsis", max_width=40)
    for entry in page.entries:
        details = json.dumps(entry.details, sort_keys=True) if entry.details else ""
        table.add_row(
            render.when(entry.at),
            entry.tenant_id or "-",
            entry.actor,
            entry.action,
            entry.target,
            entry.origin,
            details,
        )
    out = render.console()
    out.print(table if page.entries else Text("no audit entries"))
    if page.next_cursor:
        out.print(Text(f"more: --cursor {page.next_cursor}", style="dim"))


def _counters(usage: UsageCounters) -> tuple[str, ...]:
    hours = (usage.task_seconds, usage.cpu_seconds, usage.gpu_seconds)
    return (str(usage.attempts), *(f"{seconds / 3600:.2f}" for seconds in hours))
