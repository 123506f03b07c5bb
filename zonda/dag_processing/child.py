"""Import one DAG file in a throw-away process and print the specs of its DAGs as JSON.

The protocol between this child and `zonda.dag_processing.runner`:

- argv: `python -m zonda.dag_processing.child FILE` (FILE absolute; it becomes each spec's fileloc).
- stdout: exactly one JSON object, written after the import has finished:
  `{"dags": [<DagSpec as a dict>, ...], "source": "<the file's text>"}` on success, or
  `{"error": "<traceback text>"}` if reading, importing or serializing raised anything.
- stderr: whatever the DAG file printed; file descriptor 1 points at stderr during the import, so
  neither `print` nor C code nor subprocesses of the DAG file can corrupt the answer.
- exit status 0 after an answer. Anything else (a crash, a kill on timeout) means "no answer".

Why a process: user code may hang, crash or leak; the parent kills it and moves on, and each import
starts from a clean interpreter so edited helper modules are imported afresh.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from zonda.sdk import discovery
from zonda.sdk.discovery import dags_in, load_module
from zonda.sdk.serialize import dag_to_spec

_OWN_FILES = frozenset({__file__, discovery.__file__})


def read_source(path: Path) -> str:
    """The file's text as Python reads it (PEP 263 encoding cookie honoured, newlines normalized)."""
    return importlib.util.decode_source(path.read_bytes())


def parse(fileloc: str) -> str:
    """Import `fileloc` and return the JSON answer (never raises for problems in the DAG file)."""
    try:
        source = read_source(Path(fileloc))
        module = load_module(source, fileloc=fileloc, module_name=_module_name(fileloc))
        specs = [asdict(dag_to_spec(dag, fileloc)) for dag in dags_in(module).values()]
        return json.dumps({"dags": specs, "source": source})
    except BaseException as exc:
        return json.dumps({"error": user_traceback(exc)})


def user_traceback(exc: BaseException) -> str:
    """The traceback text without the leading frames of this module and of `load_module`."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename in _OWN_FILES:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _module_name(fileloc: str) -> str:
    """A module name no real module has, stable per file."""
    return "zonda_dagfile_" + hashlib.sha256(fileloc.encode()).hexdigest()[:16]


def _take_stdout() -> TextIO:
    """Point fd 1 and `sys.stdout` at stderr; return a private handle on the real stdout."""
    sys.stdout.flush()
    answer = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return answer


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m zonda.dag_processing.child FILE", file=sys.stderr)
        return 2
    answer = _take_stdout()
    answer.write(parse(os.path.abspath(argv[0])))
    answer.flush()
    sys.stderr.flush()
    return 0


if __name__ == "__main__":
    # os._exit: threads or atexit hooks started by the DAG file must not keep the child alive.
    os._exit(main(sys.argv[1:]))
