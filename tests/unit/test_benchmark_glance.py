"""docs/benchmarks.md's targets-at-a-glance table follows the generated section of each configuration."""

from __future__ import annotations

from pathlib import Path

from benchmarks.report import ConfigReport, marker, update_doc

LOAD = {
    "cpu_busy_s": 50.0,
    "cpu_available_s": 120.0,
    "cpu_benchmark_s": 40.0,
    "cpu_other_s": 10.0,
    "loadavg_start": 1.0,
    "loadavg_end": 1.0,
}


def config_report(config: str, date: str, w1_p50: float, w2: float) -> ConfigReport:
    spreads = {
        "W1": {"transition_ms_p50": (w1_p50 - 1, w1_p50, w1_p50 + 1), "transition_ms_p95": (9.0, 10.0, 11.0)},
        "W2": {"tasks_per_s": (w2 - 10, w2, w2 + 10)},
    }
    return ConfigReport(
        config=config,
        date=date,
        command="python -m benchmarks.run",
        repeat=5,
        workers="16 workers",
        warmup=True,
        duration_s=60.0,
        machine={"cpu": "cpu", "cores": "2", "ram": "1 GiB", "python": "3.11", "kernel": "6", "sqlite": "3"},
        versions="",
        load=LOAD,
        spreads=spreads,
        raw_path="benchmarks/results/x.json",
        code="commit abc1234, zonda/ clean",
    )


def glance_rows(text: str) -> list[str]:
    """The table rows of the glance block, without its header."""
    begin, end = marker("glance")
    block = text[text.index(begin) : text.index(end)]
    return [line for line in block.splitlines() if line.startswith("| ") and "configuration" not in line]


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_the_glance_lists_each_judged_figure_of_each_configuration_under_results(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nHow to run.\n\n## Results\n")
    update_doc(doc, [config_report("sqlite", "2026-11-24 10:00 UTC", 4.0, 1500.0)])
    text = doc.read_text()
    assert text.index("## Results") < text.index(marker("glance")[0]) < text.index(marker("sqlite")[0])
    assert glance_rows(text) == [
        "| SQLite + local executor | 2026-11-24 10:00 UTC, abc1234 | W1 transition p50, ms | 4.00 | <= 5.00 | met |",
        "| SQLite + local executor | 2026-11-24 10:00 UTC, abc1234 | W2 tasks/s = 1000 / (start(join) - end(start))"
        " | 1,500 | >= 1,000 | met |",
    ]


def test_rerunning_one_configuration_updates_its_rows_and_keeps_the_others(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    update_doc(
        doc,
        [
            config_report("sqlite", "2026-11-24 10:00 UTC", 4.0, 1500.0),
            config_report("celery-redis", "2026-11-24 10:10 UTC", 60.0, 550.0),
        ],
    )
    update_doc(doc, [config_report("sqlite", "2026-11-24 12:00 UTC", 6.0, 900.0)])
    text = doc.read_text()
    assert text.count(marker("glance")[0]) == 1
    rows = glance_rows(text)
    assert [cells(row)[1:] for row in rows] == [
        ["2026-11-24 12:00 UTC, abc1234", "W1 transition p50, ms", "6.00", "<= 5.00", "**MISSED**"],
        [
            "2026-11-24 12:00 UTC, abc1234",
            "W2 tasks/s = 1000 / (start(join) - end(start))",
            "900",
            ">= 1,000",
            "**MISSED**",
        ],
        ["2026-11-24 10:10 UTC, abc1234", "W1 transition p50, ms", "60.0", "<= 20.0", "**MISSED**"],
        [
            "2026-11-24 10:10 UTC, abc1234",
            "W2 tasks/s = 1000 / (start(join) - end(start))",
            "550",
            ">= 500",
            "met",
        ],
    ]
