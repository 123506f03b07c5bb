"""Run a bash task's command: output streamed to the task log, exit status checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from zonda.errors import ZondaError
from zonda.sdk.context import TaskContext
from zonda.sdk.task import BashOptions


class BashCommandError(ZondaError):
    """A bash task's command exited with a non-zero status."""


def run_bash(command: str, options: BashOptions, ctx: TaskContext, secrets: Mapping[str, str]) -> str | None:
    """Run `command` with bash; returns the last line it printed (the task's return value)."""
    print(f"$ {command}", flush=True)
    proc = subprocess.Popen(
        ["bash", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_environment(options, ctx, secrets),
        cwd=options.cwd,
        text=True,
        start_new_session=True,
    )
    last: str | None = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            last = line.rstrip("\n") or last
        status = proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    if status != 0:
        raise BashCommandError(f"command exited with status {status}: {command}")
    return last


def _environment(options: BashOptions, ctx: TaskContext, secrets: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ZONDA_RUN_ID=ctx.run_id,
        ZONDA_DAG_ID=ctx.dag_id,
        ZONDA_TASK_ID=ctx.task_id,
        ZONDA_TRY_NUMBER=str(ctx.try_number),
        ZONDA_MAP_INDEX=str(ctx.map_index),
        ZONDA_KEY=ctx.key or "",
        ZONDA_LOGICAL_DATE=ctx.logical_date.isoformat() if ctx.logical_date else "",
        ZONDA_PARAMS=json.dumps(dict(ctx.params), default=str),
        ZONDA_API_URL=ctx.api_url,
        ZONDA_API_TOKEN=ctx.api_token,
    )
    env.update({f"ZONDA_SECRET_{k.upper()}": v for k, v in secrets.items()})
    env.update(options.env)
    if options.venv:
        venv = Path(options.venv)
        if not (venv / "bin").is_dir():
            raise BashCommandError(
                f"virtualenv {options.venv!r} has no bin/ folder; create it or fix `venv=`"
            )
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.pop("PYTHONHOME", None)
    return env
