"""DAG files without a database: which files are DAG files, change stamps, the code store, the child."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from zonda.core.spec import DagSpec, TaskSpec, dag_spec_from_dict
from zonda.dag_processing.child import parse
from zonda.dag_processing.code_store import code_path, store_source, version_hash
from zonda.dag_processing.registry import conflict_message
from zonda.dag_processing.runner import timeout_message
from zonda.dag_processing.scan import FileStamp, changed_dag_files, dag_files, scan

DAG_FILE = """\
from zonda import dag, task

@task
def hello() -> str:
    return "hi"

@dag(schedule="@daily")
def unit_greet(name: str = "x"):
    hello()
"""


def put(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


# scan -------------------------------------------------------------------------------------------


def test_scan_applies_the_name_rules_and_the_zonda_marker(tmp_path: Path) -> None:
    dag = put(tmp_path / "a.py", "import zonda\n")
    nested = put(tmp_path / "team" / "b.py", "from Zonda import dag\n")
    helper = put(tmp_path / "helper.py", "X = 1\n")
    for skipped in ("_private.py", ".hidden.py", "__pycache__/c.py", ".git/d.py", "_lib/e.py", "notes.txt"):
        put(tmp_path / skipped, "import zonda\n")

    stamps = scan(tmp_path, {})

    assert set(stamps) == {dag, nested, helper}
    assert dag_files(stamps) == {dag, nested}


def test_only_new_or_changed_dag_files_are_reported(tmp_path: Path) -> None:
    first = put(tmp_path / "a.py", "import zonda\n")
    second = put(tmp_path / "b.py", "import zonda\n")
    before = scan(tmp_path, {})
    assert changed_dag_files({}, before) == [first, second]
    assert changed_dag_files(before, scan(tmp_path, before)) == []

    stat = os.stat(second)
    os.utime(second, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    after = scan(tmp_path, before)

    assert changed_dag_files(before, after) == [second]


def test_unchanged_files_are_not_read_again(tmp_path: Path) -> None:
    path = put(tmp_path / "a.py", "X = 1\n")
    stat = os.stat(path)
    remembered = FileStamp(stat.st_mtime_ns, stat.st_size, is_dag_file=True)

    assert scan(tmp_path, {path: remembered})[path] is remembered


def test_a_vanished_folder_has_no_files(tmp_path: Path) -> None:
    assert scan(tmp_path / "missing", {}) == {}


# code store -------------------------------------------------------------------------------------


def spec(task_id: str = "t", fileloc: str = "/dags/a.py") -> DagSpec:
    return DagSpec(dag_id="d", tasks=(TaskSpec(task_id),), fileloc=fileloc)


def test_version_hash_covers_spec_and_source() -> None:
    base = version_hash(spec(), "x = 1\n")

    assert base == version_hash(spec(), "x = 1\n")
    assert len(base) == 64
    assert len({base, version_hash(spec("u"), "x = 1\n"), version_hash(spec(), "x = 2\n")}) == 3
    assert version_hash(spec(fileloc="/dags/b.py"), "x = 1\n") != base


def test_store_source_writes_once_and_leaves_no_temp_files(tmp_path: Path) -> None:
    code_dir = tmp_path / "code"
    path = store_source(code_dir, "abc", "print('v1')\n")

    assert path == code_path(code_dir, "abc") == code_dir / "abc.py"
    assert path.read_text() == "print('v1')\n"
    assert store_source(code_dir, "abc", "ignored") == path
    assert path.read_text() == "print('v1')\n", "a stored version never changes"
    assert [p.name for p in code_dir.iterdir()] == ["abc.py"]


# messages ---------------------------------------------------------------------------------------


def test_messages_say_what_to_fix() -> None:
    assert timeout_message(3.0) == (
        "DAG file took longer than 3 s to import (ZONDA_PARSE_TIMEOUT); move slow work into tasks"
    )
    message = conflict_message({"greet": "/dags/a.py"})
    assert message.startswith("DAG id 'greet' is already defined in /dags/a.py")


# child ------------------------------------------------------------------------------------------


def test_child_answer_holds_specs_and_source(tmp_path: Path) -> None:
    path = put(tmp_path / "unit_greet.py", DAG_FILE)

    answer = json.loads(parse(path))

    assert answer["source"] == DAG_FILE
    specs = [dag_spec_from_dict(d) for d in answer["dags"]]
    assert [(s.dag_id, s.fileloc, s.tasks[0].task_id) for s in specs] == [("unit_greet", path, "hello")]


def test_child_answer_for_a_broken_file_is_its_traceback(tmp_path: Path) -> None:
    path = put(tmp_path / "broken.py", "import zonda\n\n1 / 0\n")

    error = json.loads(parse(path))["error"]

    assert error.startswith("Traceback (most recent call last):")
    assert f'File "{path}", line 3' in error
    assert error.rstrip().endswith("ZeroDivisionError: division by zero")


def test_child_process_prints_one_json_object_despite_user_output(tmp_path: Path) -> None:
    noisy = "import os\nprint('hello from the DAG file')\nos.write(1, b'raw')\n"
    path = put(tmp_path / "noisy.py", noisy + DAG_FILE)

    done = subprocess.run(
        [sys.executable, "-m", "zonda.dag_processing.child", path],
        capture_output=True,
        check=True,
        timeout=60,
    )

    assert [d["dag_id"] for d in json.loads(done.stdout)["dags"]] == ["unit_greet"]
    assert b"hello from the DAG file" in done.stderr
    assert b"raw" in done.stderr
