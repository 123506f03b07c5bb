"""`zonda up`: start every component as a child process, restart one that crashes, stop all cleanly."""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess

from zonda.db.engine import make_engine
from zonda.db.migrate import upgrade
from zonda.settings import Settings
from zonda.standalone.components import run_api, run_dag_processor, run_scheduler, stop_on_signals

log = logging.getLogger(__name__)
_ctx = multiprocessing.get_context("spawn")
Entry = Callable[[Settings, int], None]
COMPONENTS: dict[str, Entry] = {
    "dag-processor": run_dag_processor,
    "scheduler": run_scheduler,
    "api": run_api,
}


def serve(settings: Settings, on_ready: Callable[[Settings], None] | None = None) -> None:
    """Run Zonda in the foreground until SIGINT/SIGTERM; unfinished runs resume on the next start."""
    prepare(settings)
    stop = stop_on_signals()
    children = {name: _start(name, entry, settings) for name, entry in COMPONENTS.items()}
    print(banner(settings), flush=True)
    if on_ready is not None:
        on_ready(settings)
    while not stop.wait(0.5):
        for name, proc in list(children.items()):
            if not proc.is_alive():
                log.error("%s exited with code %s; restarting it", name, proc.exitcode)
                children[name] = _start(name, COMPONENTS[name], settings)
    _stop_all(children)


def banner(settings: Settings) -> str:
    """What a user needs to know once `zonda up` is starting."""
    db = (
        settings.resolved_db_url.split("@")[-1]
        if "@" in settings.resolved_db_url
        else settings.resolved_db_url
    )
    return (
        f"Zonda is starting: API http://{settings.host}:{settings.port} (OpenAPI at /openapi.json)\n"
        f"  DAGs    {settings.resolved_dags_folder}\n"
        f"  home    {settings.home}\n"
        f"  DB      {db}\n"
        f"  workers {settings.workers}\n"
        "Press Ctrl-C to stop; unfinished runs resume on the next start."
    )


def prepare(settings: Settings) -> None:
    """Create ZONDA_HOME and bring the metadata DB schema up to date."""
    for folder in (settings.home, settings.logs_dir, settings.code_dir, settings.run_dir):
        folder.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_db_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


@contextmanager
def run_beside(entry: Entry, settings: Settings, enabled: bool = True) -> Iterator[None]:
    """Run another component as a child process for the duration of the block."""
    if not enabled:
        yield
        return
    child = _start(entry.__name__, entry, settings)
    try:
        yield
    finally:
        _stop_all({entry.__name__: child})


def _start(name: str, entry: Entry, settings: Settings) -> BaseProcess:
    proc = _ctx.Process(target=entry, args=(settings, os.getpid()), name=f"zonda-{name}")
    proc.start()
    return proc


def _stop_all(children: dict[str, BaseProcess]) -> None:
    for proc in children.values():
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + 15
    for name, proc in children.items():
        proc.join(max(0.1, deadline - time.monotonic()))
        if proc.is_alive():
            log.warning("%s did not stop in time; killing it", name)
            proc.kill()
            proc.join()
