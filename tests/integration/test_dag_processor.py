"""The DAG processor end to end: real child processes, a real DAG folder, SQLite and PostgreSQL."""

from __future__ import annotations

import os
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.doubles import RecordingWaker
from zonda.dag_processing.code_store import code_path, tenant_code_dir
from zonda.dag_processing.processor import DagProcessor, ParseReport
from zonda.db import dags as db
from zonda.db.engine import read_txn, write_txn
from zonda.settings import Settings

GOOD = """
from zonda import dag, task

@task
def hello() -> str:
    return "{greeting}"

@dag(schedule="@daily")
def {dag_id}(name: str = "x"):
    hello()
"""

TWO_TASKS = """
from zonda import dag, task

@task
def hello() -> str:
    return "hi"

@task
def shout(text: str) -> str:
    return text.upper()

@dag(schedule="@daily")
def greet(name: str = "x"):
    shout(hello())
"""

CYCLE = """
from zonda import dag, task

@task
def a() -> str:
    return "a"

@task
def b() -> str:
    return "b"

@dag
def loop():
    first, second = a(), b()
    first >> second
    second >> first
"""

HANG = """
import os, time, zonda
with open("{pid_file}", "w") as f:
    f.write(str(os.getpid()))
time.sleep(60)
"""

BROKEN = {
    "syntax": ("from zonda import dag\ndef oops(:\n", "SyntaxError"),
    "raises": ("import zonda\nraise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
    "cycle": (CYCLE, "DagCycleError: DAG 'loop' has a cycle"),
    "bad_schedule": (
        GOOD.format(greeting="hi", dag_id="sched").replace("@daily", "not a cron"),
        "ScheduleError",
    ),
    "sys_exit": ("import sys, zonda\nsys.exit(4)\n", "SystemExit: 4"),
    "crash": ("import os, zonda\nos._exit(3)\n", "exited with status 3"),
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "dags"
    path.mkdir()
    return path


@pytest.fixture
def settings(tmp_path: Path, folder: Path, db_url: str) -> Settings:
    return Settings(home=tmp_path / "home", dags_folder=folder, db_url=db_url, parse_timeout=3)


@pytest.fixture
def waker() -> RecordingWaker:
    return RecordingWaker()


@pytest.fixture
def processor(settings: Settings, engine: Engine, waker: RecordingWaker) -> DagProcessor:
    return DagProcessor(settings, engine, waker)


def write(path: Path, text: str) -> Path:
    """Write a DAG file and move its mtime forward, so even a same-size edit is seen as a change."""
    old = path.stat().st_mtime_ns if path.exists() else time.time_ns()
    path.write_text(textwrap.dedent(text))
    os.utime(path, ns=(old + 1_000_000_000, old + 1_000_000_000))
    return path


def good(greeting: str = "hi", dag_id: str = "greet") -> str:
    return GOOD.format(greeting=greeting, dag_id=dag_id)


def dag_row(engine: Engine, dag_id: str) -> db.DagRow:
    with read_txn(engine) as conn:
        row = db.get_dag(conn, dag_id)
    assert row is not None, f"DAG {dag_id} not recorded"
    return row


def errors(engine: Engine) -> dict[str, str]:
    with read_txn(engine) as conn:
        return {e.fileloc: e.error for e in db.list_import_errors(conn)}


def test_good_file_creates_dag_version_and_code(
    processor: DagProcessor, folder: Path, engine: Engine, settings: Settings, waker: RecordingWaker
) -> None:
    path = write(folder / "greet.py", good())

    report = processor.process_once()

    assert report == ParseReport(files_parsed=1, dags_updated=1, new_versions=1)
    row = dag_row(engine, "default/greet")
    assert (row.fileloc, row.latest_version, row.active, row.paused) == (str(path), 1, True, False)
    assert (row.schedule, row.timezone, row.next_fire_at) == ("0 0 * * *", "UTC", None)
    with read_txn(engine) as conn:
        version = db.latest_version(conn, "default/greet")
    assert version is not None
    assert version.version == 1
    assert version.source == path.read_text()
    assert version.fileloc == str(path)
    assert [t.task_id for t in version.spec.tasks] == ["hello"]
    assert "name" in version.spec.params_schema["properties"]
    assert (
        code_path(tenant_code_dir(settings.code_dir, "default"), version.hash).read_text() == path.read_text()
    )
    assert waker.wakes == 1
    assert errors(engine) == {}


def test_unchanged_file_gives_no_new_version(
    processor: DagProcessor, folder: Path, engine: Engine, waker: RecordingWaker
) -> None:
    path = write(folder / "greet.py", good())
    processor.process_once()
    updated_at = dag_row(engine, "default/greet").updated_at

    assert processor.process_once() == ParseReport()
    write(path, good())  # touched: parsed again, but nothing changed
    assert processor.process_once() == ParseReport(files_parsed=1)

    with read_txn(engine) as conn:
        assert [v.version for v in db.list_versions(conn, "default/greet")] == [1]
    assert dag_row(engine, "default/greet").updated_at == updated_at
    assert waker.wakes == 1


def test_a_restarted_processor_creates_no_new_version(
    settings: Settings, engine: Engine, folder: Path
) -> None:
    write(folder / "greet.py", good())
    DagProcessor(settings, engine, RecordingWaker()).process_once()

    again = RecordingWaker()
    report = DagProcessor(settings, engine, again).process_once()

    assert report == ParseReport(files_parsed=1)
    assert again.wakes == 0
    assert dag_row(engine, "default/greet").latest_version == 1


def test_editing_a_task_creates_new_versions(processor: DagProcessor, folder: Path, engine: Engine) -> None:
    path = write(folder / "greet.py", good("hi"))
    processor.process_once()

    write(path, good("hello"))  # code only
    assert processor.process_once() == ParseReport(files_parsed=1, dags_updated=1, new_versions=1)
    write(path, TWO_TASKS)  # structure
    assert processor.process_once().new_versions == 1

    with read_txn(engine) as conn:
        versions = db.list_versions(conn, "default/greet")
    assert [v.version for v in versions] == [3, 2, 1]
    assert [t.task_id for t in versions[0].spec.tasks] == ["hello", "shout"]
    assert '"hello"' in versions[1].source
    assert '"hi"' in versions[2].source
    assert len({v.hash for v in versions}) == 3
    assert dag_row(engine, "default/greet").latest_version == 3


def test_reverting_a_file_points_back_at_the_old_version(
    processor: DagProcessor, folder: Path, engine: Engine
) -> None:
    path = write(folder / "greet.py", good("hi"))
    processor.process_once()
    write(path, good("hello"))
    processor.process_once()

    write(path, good("hi"))
    report = processor.process_once()

    assert (report.new_versions, report.dags_updated) == (0, 1)
    assert dag_row(engine, "default/greet").latest_version == 1
    with read_txn(engine) as conn:
        assert len(db.list_versions(conn, "default/greet")) == 2


def test_new_versions_keep_paused_and_next_fire(
    processor: DagProcessor, folder: Path, engine: Engine
) -> None:
    path = write(folder / "greet.py", good("hi"))
    processor.process_once()
    fire = datetime(2030, 1, 2, tzinfo=UTC)
    with write_txn(engine) as conn:
        assert db.set_paused(conn, "default/greet", True)
        db.set_next_fire(conn, "default/greet", fire)

    write(path, good("hello"))
    processor.process_once()

    row = dag_row(engine, "default/greet")
    assert (row.latest_version, row.paused, row.next_fire_at) == (2, True, fire)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_file_is_recorded_beside_a_good_one(
    case: str, processor: DagProcessor, folder: Path, engine: Engine
) -> None:
    source, expected = BROKEN[case]
    write(folder / "good.py", good())
    broken = write(folder / "broken.py", source)

    report = processor.process_once()

    assert (report.files_parsed, report.errors, report.new_versions) == (2, 1, 1)
    recorded = errors(engine)
    assert list(recorded) == [str(broken)]
    assert expected in recorded[str(broken)]
    assert dag_row(engine, "default/greet").active


def test_import_error_carries_the_traceback(processor: DagProcessor, folder: Path, engine: Engine) -> None:
    broken = write(folder / "broken.py", BROKEN["raises"][0])
    processor.process_once()

    error = errors(engine)[str(broken)]
    assert error.startswith("Traceback (most recent call last):")
    assert f'File "{broken}", line 2, in <module>' in error
    assert "zonda/dag_processing/child.py" not in error


def test_hanging_files_are_killed_after_the_timeout(
    settings: Settings, engine: Engine, folder: Path, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"parse_processes": 3})
    write(folder / "good.py", good())
    hanging = [write(folder / f"hang{i}.py", HANG.format(pid_file=tmp_path / f"pid{i}")) for i in (1, 2)]

    started = time.monotonic()
    report = DagProcessor(settings, engine, RecordingWaker()).process_once()
    elapsed = time.monotonic() - started

    assert elapsed < settings.parse_timeout + 5, "children run in parallel and are killed on time"
    assert (report.errors, report.new_versions) == (2, 1)
    recorded = errors(engine)
    for path in hanging:
        assert "took longer than 3 s to import (ZONDA_PARSE_TIMEOUT)" in recorded[str(path)]
    for i in (1, 2):
        with pytest.raises(ProcessLookupError):
            os.kill(int((tmp_path / f"pid{i}").read_text()), 0)
    assert dag_row(engine, "default/greet").active


def test_fixing_a_broken_file_clears_its_error(processor: DagProcessor, folder: Path, engine: Engine) -> None:
    path = write(folder / "greet.py", good("hi"))
    processor.process_once()

    write(path, good("hi") + "\nraise ValueError('half-edited')\n")
    assert processor.process_once().errors == 1
    row = dag_row(engine, "default/greet")
    assert (row.active, row.latest_version) == (True, 1), "last good version stays runnable"
    assert "ValueError: half-edited" in errors(engine)[str(path)]

    write(path, good("fixed"))
    assert processor.process_once() == ParseReport(files_parsed=1, dags_updated=1, new_versions=1)
    assert errors(engine) == {}
    assert dag_row(engine, "default/greet").latest_version == 2


def test_deleting_files_deactivates_dags_and_drops_errors(
    processor: DagProcessor, folder: Path, engine: Engine, waker: RecordingWaker
) -> None:
    path = write(folder / "greet.py", good())
    broken = write(folder / "broken.py", BROKEN["raises"][0])
    processor.process_once()

    path.unlink()
    broken.unlink()
    report = processor.process_once()

    assert (report.files_parsed, report.deactivated) == (0, 1)
    assert not dag_row(engine, "default/greet").active
    assert errors(engine) == {}
    with read_txn(engine) as conn:
        assert db.list_dags(conn) == []
        assert [d.dag_id for d in db.list_dags(conn, include_inactive=True)] == ["default/greet"]
    assert waker.wakes == 2

    write(path, good())
    assert processor.process_once() == ParseReport(files_parsed=1, dags_updated=1)
    assert dag_row(engine, "default/greet").active


def test_files_deleted_while_stopped_are_deactivated_on_start(
    settings: Settings, engine: Engine, folder: Path
) -> None:
    path = write(folder / "greet.py", good())
    DagProcessor(settings, engine, RecordingWaker()).process_once()
    path.unlink()

    report = DagProcessor(settings, engine, RecordingWaker()).process_once()

    assert report.deactivated == 1
    assert not dag_row(engine, "default/greet").active


def test_a_dag_removed_from_its_file_is_deactivated(
    processor: DagProcessor, folder: Path, engine: Engine
) -> None:
    path = write(folder / "two.py", good(dag_id="first") + good(dag_id="second"))
    assert processor.process_once().new_versions == 2

    write(path, good(dag_id="first"))
    report = processor.process_once()

    assert report.deactivated == 1
    assert dag_row(engine, "default/first").active
    assert not dag_row(engine, "default/second").active


def test_duplicate_dag_id_in_a_second_file(processor: DagProcessor, folder: Path, engine: Engine) -> None:
    first = write(folder / "a.py", good("from a"))
    second = write(folder / "b.py", good("from b"))

    report = processor.process_once()

    assert (report.new_versions, report.errors) == (1, 1)
    assert dag_row(engine, "default/greet").fileloc == str(first)
    assert f"DAG id 'default/greet' is already defined in {first}" in errors(engine)[str(second)]

    first.unlink()  # the id is free now: the second file gets it on the next pass
    assert processor.process_once().deactivated == 1
    processor.process_once()
    row = dag_row(engine, "default/greet")
    assert (row.fileloc, row.active, row.latest_version) == (str(second), True, 2)
    assert errors(engine) == {}


def test_a_dag_moved_to_another_file_in_one_pass(
    processor: DagProcessor, folder: Path, engine: Engine
) -> None:
    old = write(folder / "z_old.py", good())
    processor.process_once()

    write(old, good(dag_id="other"))
    new = write(folder / "b_new.py", good())
    report = processor.process_once()

    assert report.errors == 0
    assert dag_row(engine, "default/greet").fileloc == str(new)
    assert dag_row(engine, "default/other").active


def test_only_dag_files_are_imported(processor: DagProcessor, folder: Path, engine: Engine) -> None:
    write(folder / "greet.py", good())
    write(folder / "helper.py", "raise RuntimeError('a helper must not be imported alone')\n")
    write(folder / "_private.py", "import zonda\nraise RuntimeError('private')\n")
    write(folder / ".hidden.py", "import zonda\nraise RuntimeError('hidden')\n")
    (folder / "__pycache__").mkdir()
    write(folder / "__pycache__" / "x.py", "import zonda\nraise RuntimeError('cache')\n")
    (folder / "team").mkdir()
    write(folder / "team" / "nested.py", good(dag_id="nested"))

    report = processor.process_once()

    assert (report.files_parsed, report.errors) == (2, 0)
    assert dag_row(engine, "default/nested").fileloc == str(folder / "team" / "nested.py")


def test_output_of_the_dag_file_does_not_corrupt_the_answer(
    processor: DagProcessor, folder: Path, engine: Engine
) -> None:
    noisy = "import os, sys\nprint('{\"dags\": []}')\nos.write(1, b'raw bytes')\nsys.stdout.flush()\n"
    write(folder / "noisy.py", noisy + good())

    assert processor.process_once().new_versions == 1
    assert errors(engine) == {}


def test_helper_modules_beside_the_dag_are_importable(
    processor: DagProcessor, folder: Path, engine: Engine
) -> None:
    write(folder / "helpers.py", "GREETING = 'from helper'\n")
    write(folder / "greet.py", "from helpers import GREETING\n" + good())

    assert processor.process_once().errors == 0
    assert dag_row(engine, "default/greet").active


def test_schedulable_dags_and_queries(processor: DagProcessor, folder: Path, engine: Engine) -> None:
    write(folder / "greet.py", good())
    write(folder / "manual.py", good(dag_id="manual").replace('schedule="@daily"', "schedule=None"))
    write(folder / "paused.py", good(dag_id="paused"))
    processor.process_once()
    with write_txn(engine) as conn:
        db.set_paused(conn, "default/paused", True)
        assert not db.set_paused(conn, "nope", True)

    with read_txn(engine) as conn:
        pairs = db.schedulable_dags(conn)
        assert [d.dag_id for d in db.list_dags(conn)] == ["default/greet", "default/manual", "default/paused"]
        assert db.get_dag(conn, "nope") is None
        assert db.latest_version(conn, "nope") is None
        assert db.get_version(conn, "default/greet", 2) is None

    assert [(d.dag_id, v.version) for d, v in pairs] == [("default/greet", 1)]
    assert pairs[0][1].spec.schedule is not None
    assert dag_row(engine, "default/manual").schedule is None


def test_run_forever_parses_until_stopped(
    settings: Settings, engine: Engine, folder: Path, waker: RecordingWaker
) -> None:
    settings = settings.model_copy(update={"parse_interval": 0.1})
    processor = DagProcessor(settings, engine, waker)
    stop = threading.Event()
    thread = threading.Thread(target=processor.run_forever, args=(stop,))
    thread.start()
    try:
        write(folder / "greet.py", good())
        deadline = time.monotonic() + 20
        while waker.wakes == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=20)

    assert not thread.is_alive()
    assert dag_row(engine, "default/greet").active


def test_a_missing_folder_retires_no_dag_and_is_reported_once(
    processor: DagProcessor, folder: Path, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    write(folder / "greet.py", good())
    processor.process_once()
    away = folder.rename(folder.with_name("unmounted"))

    with caplog.at_level("WARNING", logger="zonda.dag_processing.processor"):
        first, second = processor.process_once(), processor.process_once()
    assert first.deactivated == second.deactivated == 0
    assert dag_row(engine, "default/greet").active
    assert [r.getMessage() for r in caplog.records].count(
        f"DAG folder {folder} of tenant default does not exist (not mounted yet, removed or mistyped?); "
        "its DAGs stay as they are until it is back"
    ) == 1

    away.rename(folder)
    (folder / "greet.py").unlink()
    assert processor.process_once().deactivated == 1, (
        "a file deleted from a folder that is back retires its DAG"
    )


def test_a_processor_started_while_its_folder_is_missing_retires_nothing(
    settings: Settings, engine: Engine, folder: Path
) -> None:
    write(folder / "greet.py", good())
    DagProcessor(settings, engine, RecordingWaker()).process_once()
    folder.rename(folder.with_name("unmounted"))

    assert DagProcessor(settings, engine, RecordingWaker()).process_once().deactivated == 0
    assert dag_row(engine, "default/greet").active
