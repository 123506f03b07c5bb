"""Tables of figures next to the targets and the reference figures; the machine; docs/benchmarks.md."""

from __future__ import annotations

import math
import os
import platform
import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks import load

Spread = Mapping[str, tuple[float, float, float]]

CONFIG_TITLES = {
    "sqlite": "SQLite + local executor",
    "postgres": "PostgreSQL + local executor",
    "celery-redis": "PostgreSQL + Celery executor (Redis broker)",
    "celery-rabbitmq": "PostgreSQL + Celery executor (RabbitMQ broker)",
}
WORKLOAD_TITLES = {
    "W0": "W0 floor (measured before the server starts)",
    "W1a": "W1a onboarding_40x20, one run alone",
    "W1": "W1 onboarding_40x20, 20 runs triggered at once",
    "W1r3": "W1r3 onboarding_40x20_r3: W1's 20 runs, at most 3 under way at once (the DAG's max_active_runs)",
    "W2": "W2 fanout_1000 (mapped task)",
    "W3": "W3 one_task, 20 triggers in sequence through the REST API",
    "W4": "W4 scale: W1 with 10,000 DAG versions and 1,000,000 ended task instances in the DB",
}


@dataclass(frozen=True)
class Row:
    """How to show one figure: label, unit, target (`<=`/`>=` and value) and the reference figures."""

    label: str
    target: tuple[str, float] | None = None
    airflow: str = ""
    prefect: str = ""
    dagster: str = ""
    note: str = ""


ROWS: dict[str, dict[str, Row]] = {
    "W0": {
        "commit_us": Row(
            "committed single-row UPDATE, µs (this config's DB)",
            note="BENCHMARKS.md: SQLite 28, PostgreSQL 360",
        ),
        "pipe_round_trip_us": Row("pipe round trip to a worker process, µs", note="BENCHMARKS.md: 70"),
        "broker_round_trip_us": Row(
            "round trip to a process through the broker (publish, it consumes and publishes back), µs"
        ),
        "celery_message_cpu_us": Row(
            "CPU of a plain Celery worker per message of a trivial task (threads pool of one, as a slot), µs"
        ),
        "python_loop_ms": Row("machine speed: an empty Python loop of 10 million steps, ms"),
        "fresh_memory_ms": Row(
            "machine speed: first write to each 4 KiB page of 256 MiB of fresh memory, ms"
        ),
    },
    "W1a": {
        "transition_ms_p50": Row("transition p50, ms", ("<=", 1.0), "781 (244 with 1 s loops)", "in-process"),
        "transition_ms_p95": Row("transition p95, ms"),
        "transition_ms_p99": Row(
            "transition p99, ms", ("<=", 5.0), "1,266 (446 with 1 s loops)", "in-process"
        ),
        "transition_ms_max": Row("transition max, ms"),
        "makespan_ms": Row("makespan (created -> last task ended), ms"),
        "react_ms_p50": Row("part 1: upstream ended -> scheduler woke to dispatch, p50 ms"),
        "react_ms_p95": Row("part 1: upstream ended -> scheduler woke to dispatch, p95 ms"),
        "dispatch_ms_p50": Row("part 2: scheduler woke -> task started in a worker, p50 ms"),
        "dispatch_ms_p95": Row("part 2: scheduler woke -> task started in a worker, p95 ms"),
        "p50_x_commit": Row("transition p50 / W0 commit floor, x"),
        "p50_x_pipe": Row("transition p50 / W0 pipe floor, x"),
        "p50_x_broker": Row("transition p50 / W0 broker floor, x"),
    },
    "W1": {
        "transition_ms_p50": Row("transition p50, ms", ("<=", 5.0), "14,930", "38.8", "79,344"),
        "transition_ms_p95": Row("transition p95, ms"),
        "transition_ms_p99": Row("transition p99, ms", ("<=", 50.0), "28,171", "124", "99,016"),
        "transition_ms_max": Row("transition max, ms"),
        "makespan_ms_p50": Row("run makespan p50, ms"),
        "makespan_ms_p95": Row("run makespan p95, ms"),
        "makespan_ms_max": Row("run makespan max, ms"),
        "wall_s": Row(
            "wall time, 20 runs (first trigger sent -> last task ended), s",
            ("<=", 2.0),
            "144",
            "64.5",
            "1,449",
        ),
        "trigger_spread_ms": Row("spread of the 20 trigger sends (client), ms"),
        "react_ms_p50": Row("part 1: upstream ended -> scheduler woke to dispatch, p50 ms"),
        "react_ms_p95": Row("part 1: upstream ended -> scheduler woke to dispatch, p95 ms"),
        "dispatch_ms_p50": Row("part 2: scheduler woke -> task started in a worker, p50 ms"),
        "dispatch_ms_p95": Row("part 2: scheduler woke -> task started in a worker, p95 ms"),
        "p50_x_commit": Row("transition p50 / W0 commit floor, x"),
        "p50_x_pipe": Row("transition p50 / W0 pipe floor, x"),
        "p50_x_broker": Row("transition p50 / W0 broker floor, x"),
    },
    "W2": {
        "tasks_per_s": Row(
            "tasks/s = 1000 / (start(join) - end(start))", (">=", 1000.0), "2.4", "91", "0.35"
        ),
        "fanout_s": Row("start(join) - end(start), s"),
        "makespan_ms": Row("makespan, ms"),
    },
    "W3": {
        "trigger_to_start_ms_p50": Row(
            "trigger sent -> task started p50, ms",
            ("<=", 20.0),
            "1,075 (175 with 1 s loops)",
            "9,522",
            "13,821",
        ),
        "trigger_to_start_ms_p95": Row("trigger sent -> task started p95, ms"),
        "trigger_to_start_ms_max": Row("trigger sent -> task started max, ms"),
        "api_ms_p50": Row("part 1: trigger sent -> run created (API), p50 ms"),
        "pickup_ms_p50": Row("part 2: run created -> scheduler woke to dispatch, p50 ms"),
        "start_ms_p50": Row("part 3: scheduler woke -> task started in a worker, p50 ms"),
    },
    "W4": {
        "p50_vs_empty": Row("transition p50 / W1's median p50 on the empty DB, x", ("<=", 1.10)),
        "transition_ms_p50": Row("transition p50, ms"),
        "transition_ms_p95": Row("transition p95, ms"),
        "transition_ms_p99": Row("transition p99, ms"),
        "transition_ms_max": Row("transition max, ms"),
        "makespan_ms_p50": Row("run makespan p50, ms"),
        "wall_s": Row("wall time, 20 runs (first trigger sent -> last task ended), s"),
        "react_ms_p50": Row("part 1: upstream ended -> scheduler woke to dispatch, p50 ms"),
        "dispatch_ms_p50": Row("part 2: scheduler woke -> task started in a worker, p50 ms"),
    },
}


ROWS["W1r3"] = {name: Row(row.label) for name, row in ROWS["W1"].items()}
"""W1's figures without targets or reference figures: BENCHMARKS.md's W1 has every run under way."""


CELERY_TARGETS: dict[str, dict[str, tuple[str, float] | None]] = {
    "W1a": {"transition_ms_p50": None, "transition_ms_p99": None},
    "W1": {"transition_ms_p50": ("<=", 20.0), "transition_ms_p99": ("<=", 100.0), "wall_s": None},
    "W2": {"tasks_per_s": (">=", 500.0)},
    "W3": {"trigger_to_start_ms_p50": None},
}
"""The issue's targets for the Celery configurations (W1 p50/p99, W2 with 2 worker processes); the
other local-executor targets do not apply to them."""


def is_celery(config: str) -> bool:
    return config.startswith("celery-")


def row_for(config: str, workload: str, name: str) -> Row:
    """How figure `name` of `workload` is shown for `config`, with that configuration's target."""
    row = ROWS[workload][name]
    overrides = CELERY_TARGETS.get(workload, {}) if is_celery(config) else {}
    return replace(row, target=overrides[name]) if name in overrides else row


def fmt(value: float) -> str:
    if math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


MET = "met"
MISSED = "**MISSED**"


def verdict(row: Row, median: float) -> str:
    if row.target is None:
        return ""
    op, limit = row.target
    met = median <= limit if op == "<=" else median >= limit
    return MET if met else MISSED


def target_text(row: Row) -> str:
    return row.note if row.target is None else f"{row.target[0]} {fmt(row.target[1])}"


def workload_rows(workload: str, spread: Spread, config: str = "sqlite") -> list[list[str]]:
    """[figure, min, median, max, target, verdict, Airflow, Prefect, Dagster] per figure measured."""
    rows: list[list[str]] = []
    for name in ROWS.get(workload, {}):
        if name not in spread:
            continue
        row = row_for(config, workload, name)
        low, mid, high = spread[name]
        cells = [row.label, fmt(low), fmt(mid), fmt(high), target_text(row), verdict(row, mid)]
        rows.append([*cells, row.airflow, row.prefect, row.dagster])
    return rows


HEADER = ["figure", "min", "median", "max", "target", "status", "Airflow 3.3", "Prefect 3.9", "Dagster 1.13"]


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def text_table(rows: Sequence[Sequence[str]]) -> str:
    """Aligned plain-text columns for the terminal (figure, min, median, max, target, verdict)."""
    cells = [HEADER[:6], *[[c.replace("**", "") for c in r[:6]] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(6)]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in cells
    )


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, Python, kernel, SQLite library version."""
    cpu = _first_match(Path("/proc/cpuinfo"), r"^model name\s*:\s*(.+)$") or platform.processor()
    mem_kb = _first_match(Path("/proc/meminfo"), r"^MemTotal:\s*(\d+) kB")
    ram = f"{int(mem_kb) / 1024 / 1024:.1f} GiB" if mem_kb else "?"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "sqlite": sqlite3.sqlite_version,
    }


def _first_match(path: Path, pattern: str) -> str | None:
    try:
        found = re.search(pattern, path.read_text(), re.MULTILINE)
    except OSError:
        return None
    return found.group(1).strip() if found else None


@dataclass
class ConfigReport:
    """What one configuration's section of docs/benchmarks.md shows."""

    config: str
    date: str
    command: str
    repeat: int
    workers: str
    warmup: bool
    duration_s: float
    machine: dict[str, str]
    versions: str
    load: dict[str, float]
    spreads: dict[str, dict[str, tuple[float, float, float]]]
    raw_path: str
    load_note: str = ""
    workload_notes: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    code: str = ""


def workload_title(report: ConfigReport, workload: str) -> str:
    note = report.workload_notes.get(workload)
    return f"{WORKLOAD_TITLES[workload]}{f', {note}' if note else ''}"


def section(report: ConfigReport) -> str:
    m = report.machine
    lines = [
        f"### {CONFIG_TITLES[report.config]}",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM; Python {m['python']}; "
        f"Linux {m['kernel']}; {report.versions}",
        f"- Date: {report.date}",
        f"- Command: `{report.command}`",
        *([f"- Code: {report.code}"] if report.code else []),
        f"- {report.repeat} repetition(s) (min / median / max over them), {report.workers}, "
        f"warm-up pass {'done, not counted' if report.warmup else 'skipped'}; "
        f"this configuration took {report.duration_s:.0f} s; raw JSON: `{report.raw_path}`",
        f"- Load during the measurement (the machine is shared): {load.describe(report.load)}"
        + (f"; {report.load_note}" if report.load_note else ""),
        *[f"- {note}" for note in report.notes],
        "",
    ]
    for workload, spread in report.spreads.items():
        lines += [
            f"#### {workload_title(report, workload)}",
            "",
            markdown_table(workload_rows(workload, spread, report.config)),
            "",
        ]
    return "\n".join(lines)


def terminal(report: ConfigReport) -> str:
    parts = [
        f"== {CONFIG_TITLES[report.config]} ({report.repeat} repetitions, {report.duration_s:.0f} s) ==",
        load.describe(report.load),
    ]
    for workload, spread in report.spreads.items():
        rows = workload_rows(workload, spread, report.config)
        parts += [f"-- {workload_title(report, workload)}", text_table(rows), ""]
    return "\n".join(parts)


DOC_HEAD = """# Benchmarks

How to run them and what each figure means: docs/benchmarks.md in the repository.

## Results
"""
"""The head of a new results file (`--out` to a file that does not exist yet)."""


def marker(config: str) -> tuple[str, str]:
    return (
        f"<!-- results:{config}:begin (generated by benchmarks/run.py) -->",
        f"<!-- results:{config}:end -->",
    )


ANY_END = re.compile(r"<!-- results:[\w-]+:end -->")
GLANCE = "glance"
RESULTS_HEADING = "## Results\n"
_DATE = re.compile(r"^- Date: (.+)$", re.MULTILINE)
_CODE = re.compile(r"^- Code: commit (\w+)", re.MULTILINE)
_WORKLOAD = re.compile(r"^#### (W\w+)", re.MULTILINE)


def update_doc(path: Path, reports: Sequence[ConfigReport]) -> None:
    """Replace each configuration's generated section, or insert it after the last generated section
    (at the end if there is none); the rest of the file is kept."""
    text = path.read_text() if path.exists() else DOC_HEAD
    for report in reports:
        begin, end = marker(report.config)
        block = f"{begin}\n{section(report)}\n{end}"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
        found = pattern.search(text)
        ends = list(ANY_END.finditer(text))
        last = ends[-1] if ends else None
        if found:
            text = text[: found.start()] + block + text[found.end() :]
        elif last is not None:
            text = text[: last.end()] + "\n\n" + block + text[last.end() :]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(with_glance(text))


def with_glance(text: str) -> str:
    """`text` with its targets-at-a-glance table (`glance`) replaced, or inserted under "## Results"."""
    begin, end = marker(GLANCE)
    block = f"{begin}\n{glance(text)}\n{end}"
    found = re.search(re.escape(begin) + r".*?" + re.escape(end), text, re.DOTALL)
    if found:
        return text[: found.start()] + block + text[found.end() :]
    at = text.find(RESULTS_HEADING)
    at = len(text) if at < 0 else at + len(RESULTS_HEADING)
    return f"{text[:at]}\n{block}\n{text[at:]}"


def glance(text: str) -> str:
    """Every figure with a target, as the generated section of each configuration in `text` shows it:
    one table, so a reader sees what is met and what is missed without reading every section."""
    lines = [
        "### Targets at a glance",
        "",
        "The median of every figure that has a target, from the section of each configuration below.",
        "",
        "| configuration | measured | figure | median | target | status |",
        "|---|---|---|---|---|---|",
    ]
    for config, title in CONFIG_TITLES.items():
        begin, end = marker(config)
        found = re.search(re.escape(begin) + r"(.*?)" + re.escape(end), text, re.DOTALL)
        if found is None:
            continue
        section_text = found.group(1)
        date = _DATE.search(section_text)
        code = _CODE.search(section_text)
        measured = f"{date.group(1) if date else '?'}{f', {code.group(1)}' if code else ''}"
        headings = list(_WORKLOAD.finditer(section_text))
        for index, heading in enumerate(headings):
            stop = headings[index + 1].start() if index + 1 < len(headings) else len(section_text)
            for figure, median, target, status in _targeted_rows(section_text[heading.end() : stop]):
                lines.append(
                    f"| {title} | {measured} | {heading.group(1)} {figure} | {median} | {target} | {status} |"
                )
    return "\n".join(lines) + "\n"


def _targeted_rows(tables: str) -> list[tuple[str, str, str, str]]:
    """(figure, median, target, status) of each table row in `tables` that is judged on a target."""
    rows = []
    for line in tables.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == len(HEADER) and cells[5] in (MET, MISSED):
            rows.append((cells[0], cells[2], cells[4], cells[5]))
    return rows
