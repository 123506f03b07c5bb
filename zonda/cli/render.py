"""How the CLI shows things: Rich tables for people, plain JSON for scripts (`--json`), errors on stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from zonda.api.schemas import (
    DagRecord,
    ImportErrorRecord,
    PoolRecord,
    RunPage,
    RunRecord,
    TaskRecord,
    WorkerRecord,
)

STATE_STYLES = {
    "success": "green",
    "failed": "bold red",
    "upstream_failed": "red",
    "running": "cyan",
    "queued": "blue",
    "scheduled": "blue",
    "up_for_retry": "yellow",
    "skipped": "magenta",
    "pending": "dim",
}


PIPE_WIDTH = 200
"""Width for output that is not a terminal (a pipe, a file), so tables are not squeezed to 80 columns."""


def console(stderr: bool = False) -> Console:
    """A console on the current stdout/stderr (built per call so redirection and colours are detected)."""
    stream = sys.stderr if stderr else sys.stdout
    is_tty = getattr(stream, "isatty", lambda: False)()
    width = None if is_tty or "COLUMNS" in os.environ else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


def print_json(value: BaseModel | Sequence[BaseModel]) -> None:
    """Machine-readable output: the API's JSON shape, nothing else on stdout."""
    if isinstance(value, BaseModel):
        typer.echo(value.model_dump_json(indent=2))
    else:
        typer.echo(json.dumps([item.model_dump(mode="json") for item in value], indent=2))


def show_error(message: str, details: Any = None) -> None:
    """`error: message` on stderr, then one line per detail the message does not already say."""
    err = console(stderr=True)
    err.print(Text("error: ", style="bold red") + Text(message))
    for line in _detail_lines(details):
        if line not in message:
            err.print(Text(f"  - {line}"))


def fail(message: str, details: Any = None, code: int = 1) -> NoReturn:
    """Show an error and exit with `code` (1: it failed; 2: bad usage or params)."""
    show_error(message, details)
    raise typer.Exit(code)


def note(message: str) -> None:
    """A short confirmation for people (stdout)."""
    console().print(Text(message))


def state_text(state: str) -> Text:
    """A state, coloured."""
    return Text(state, style=STATE_STYLES.get(state, ""))


def when(value: datetime | None) -> str:
    """A timestamp for tables: UTC, to the second."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def duration(start: datetime | None, end: datetime | None) -> str:
    """Elapsed time between two timestamps, or '-'."""
    if start is None or end is None:
        return "-"
    seconds = (end - start).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def run_view(record: RunRecord) -> None:
    """A run's header line and its tasks table."""
    out = console()
    header = Text.assemble(
        ("run ", "bold"), record.run_id, "  dag ", (record.dag_id, "bold"), f" v{record.dag_version}  ",
        state_text(record.state), f"  {duration(record.started_at, record.ended_at)}",
    )  # fmt: skip
    if record.key:
        header.append(f"  key {record.key}")
    out.print(header)
    out.print(tasks_table(record.tasks))


def tasks_table(tasks: Sequence[TaskRecord]) -> Table:
    """A run's task instances, one row each."""
    table = Table(box=None, pad_edge=False)
    for name in ("task", "state", "try", "started", "took", "error"):
        table.add_column(name, no_wrap=name != "error")
    for t in tasks:
        name = t.task_id if t.map_index < 0 else f"{t.task_id}[{t.map_index}]"
        table.add_row(
            name, state_text(t.state), f"{t.try_number}/{t.max_tries}", when(t.started_at),
            duration(t.started_at, t.ended_at), _error_summary(t.error),
        )  # fmt: skip
    return table


def runs_view(page: RunPage) -> None:
    """The runs of one page, newest first, and how to get the next page."""
    table = Table(box=None, pad_edge=False)
    table.add_column("run", no_wrap=True, min_width=26)
    for name in ("dag", "state", "key", "trigger", "created", "took"):
        table.add_column(name, no_wrap=True)
    for r in page.runs:
        table.add_row(
            r.run_id, r.dag_id, state_text(r.state), r.key or "-", r.trigger, when(r.created_at),
            duration(r.started_at, r.ended_at),
        )  # fmt: skip
    out = console()
    out.print(table if page.runs else Text("no runs"))
    if page.next_cursor:
        out.print(Text(f"more: --cursor {page.next_cursor}", style="dim"))


def dags_view(dags: Sequence[DagRecord]) -> None:
    """The DAGs, one row each."""
    table = Table(box=None, pad_edge=False)
    for name in ("dag", "paused", "schedule", "next run", "tasks", "version", "tags"):
        table.add_column(name, no_wrap=name != "tags")
    for d in dags:
        table.add_row(
            d.dag_id, "yes" if d.paused else "no", d.schedule or "-", when(d.next_run_at),
            str(len(d.tasks)), str(d.version), ", ".join(d.tags),
        )  # fmt: skip
    console().print(table if dags else Text("no DAGs"))


def import_errors_view(errors: Sequence[ImportErrorRecord]) -> None:
    """Each broken DAG file with its traceback."""
    out = console()
    if not errors:
        out.print(Text("no import errors"))
    for e in errors:
        out.print(Text.assemble((e.fileloc, "bold red"), f"  ({when(e.recorded_at)})"))
        out.print(Text(e.error.rstrip()), Text(""))


def pools_view(pools: Sequence[PoolRecord]) -> None:
    """Pools, their tenant and their slots."""
    table = Table("tenant", "pool", "slots", "description", box=None)
    for p in pools:
        table.add_row(p.tenant_id, p.name, str(p.slots), p.description)
    console().print(table if pools else Text("no pools"))


def workers_view(workers: Sequence[WorkerRecord]) -> None:
    """Workers, their queues and what they run; gone ones (no recent heartbeat) dimmed."""
    table = Table(box=None, pad_edge=False)
    for name in ("worker", "host", "queues", "cpus", "running", "heartbeat", "started"):
        table.add_column(name, no_wrap=name != "running")
    for w in workers:
        running = ", ".join(
            f"{r.run_id}/{r.task_id}" + ("" if r.map_index < 0 else f"[{r.map_index}]") for r in w.running
        )
        table.add_row(
            w.worker_id, w.hostname, ",".join(w.queues), str(w.cpus or "?"),
            f"{len(w.running)}/{w.concurrency}{f' ({w.resting} resting)' if w.resting else ''} {running}".strip(),
            Text(f"{w.heartbeat_age_seconds:.1f}s ago", style="" if w.alive else "dim red"), when(w.started_at),
            style=None if w.alive else "dim",
        )  # fmt: skip
    console().print(table if workers else Text("no workers have sent a heartbeat"))


class TaskProgress:
    """Prints one line (on stderr) each time a task instance changes state or starts a new try."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, int], tuple[str, int]] = {}
        self._console = console(stderr=True)

    def update(self, task: TaskRecord) -> None:
        """Print a line if this task's state or try changed since last seen."""
        key, now = (task.task_id, task.map_index), (task.state, task.try_number)
        if self._seen.get(key, ("pending", 0)) == now:
            return
        self._seen[key] = now
        name = task.task_id if task.map_index < 0 else f"{task.task_id}[{task.map_index}]"
        line = Text.assemble(
            (datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3], "dim"), "  ", name.ljust(24), " ",
            Text(task.state.ljust(15), style=STATE_STYLES.get(task.state, "")),
        )  # fmt: skip
        if task.try_number:
            line.append(f" try {task.try_number}/{task.max_tries}")
        if task.error and task.state in ("failed", "up_for_retry"):
            line.append(f"  {_error_summary(task.error)}", style="red")
        self._console.print(line)


def _error_summary(text: str | None) -> str:
    """The last non-empty line of an error (for a traceback: the exception itself)."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _detail_lines(details: Any) -> list[str]:
    """API error details as readable lines ({param|field, message} dicts, or anything else)."""
    if not details:
        return []
    if not isinstance(details, list):
        return [str(details)]
    return [_detail_line(d) for d in details]


def _detail_line(detail: Any) -> str:
    """One error detail as `name: message`."""
    if isinstance(detail, dict) and "message" in detail:
        name = detail.get("param") or detail.get("field")
        return f"{name}: {detail['message']}" if name else str(detail["message"])
    return str(detail)
