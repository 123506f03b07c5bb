"""`zonda up`: start every component as a child process, restart one that crashes, stop all cleanly."""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from pathlib import Path

from zonda.db.engine import make_engine
from zonda.db.migrate import upgrade
from zonda.errors import ConfigError
from zonda.scheduler.wakeup import NullWaker
from zonda.services.bootstrap import Bootstrapped, ensure_admin, ensure_default_tenant
from zonda.services.context import Services
from zonda.settings import Settings
from zonda.standalone.components import run_api, run_dag_processor, run_scheduler
from zonda.stopping import on_stop_signals

log = logging.getLogger(__name__)
UP_LOCK = "up.lock"
"""The file in ZONDA_HOME that a running `zonda up` holds locked (with its pid in it)."""
_ctx = multiprocessing.get_context("spawn")
Entry = Callable[[Settings, int], None]
COMPONENTS: dict[str, Entry] = {
    "dag-processor": run_dag_processor,
    "scheduler": run_scheduler,
    "api": run_api,
}


def serve(settings: Settings, on_ready: Callable[[Settings], None] | None = None) -> None:
    """Run Zonda in the foreground until SIGINT/SIGTERM; unfinished runs resume on the next start."""
    check_port_free(settings.host, settings.port)
    make_folders(settings)
    with home_lock(settings.home):
        prepare(settings, embedded=True)
        stop = on_stop_signals().stop
        children = {name: _start(name, entry, settings) for name, entry in COMPONENTS.items()}
        restarts = {name: RestartPolicy() for name in COMPONENTS}
        print(banner(settings), flush=True)
        if on_ready is not None:
            on_ready(settings)
        while not stop.wait(0.5):
            now = time.monotonic()
            for name, proc in list(children.items()):
                if not proc.is_alive() and restarts[name].due(now, proc.exitcode, name):
                    children[name] = _start(name, COMPONENTS[name], settings)
        _stop_all(children)


@contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """Hold ZONDA_HOME for this `zonda up`; ConfigError if another one holds it. A home's SQLite DB,
    journals and code store belong to one server: a second one on the same home (on another port)
    would run a second scheduler and DAG processor on them. The lock ends with the process."""
    fd = os.open(home / UP_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise ConfigError(
                f"another `zonda up` (pid {holder}) serves the home {home}: stop it first, or start this one "
                "with another --home (or ZONDA_HOME)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def check_port_free(host: str, port: int) -> None:
    """ConfigError if the API could not listen on `host:port`: the restart policy would otherwise
    start it again and again, while the rest of Zonda runs without an API."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror}): is another Zonda running? Stop what "
                "listens there, or start on another port with --port N (or ZONDA_PORT)"
            ) from exc


class RestartPolicy:
    """When to restart a component that exited: at once the first time, then backing off (up to a
    minute) while it keeps crashing soon after each start, so a broken set-up does not spin a core."""

    STABLE_AFTER = 60.0

    def __init__(self) -> None:
        self.crashes = 0
        self.started = time.monotonic()
        self.restart_at: float | None = None

    def due(self, now: float, exitcode: int | None, name: str) -> bool:
        if self.restart_at is None:
            self.crashes = 1 if now - self.started > self.STABLE_AFTER else self.crashes + 1
            delay = restart_delay(self.crashes)
            log.error("%s exited with code %s; restarting it in %.1f s", name, exitcode, delay)
            self.restart_at = now + delay
        if now < self.restart_at:
            return False
        self.restart_at, self.started = None, now
        return True


def restart_delay(crashes: int) -> float:
    """Seconds before restarting a component that crashed `crashes` times in a row (0 for the first)."""
    return 0.0 if crashes <= 1 else min(60.0, 0.5 * 2 ** (crashes - 2))


def banner(settings: Settings) -> str:
    """What a user needs to know once `zonda up` is starting."""
    db = (
        settings.resolved_db_url.split("@")[-1]
        if "@" in settings.resolved_db_url
        else settings.resolved_db_url
    )
    return (
        f"Zonda is starting: API http://{settings.host}:{settings.port} (OpenAPI at /openapi.json)\n"
        f"  DAGs    {settings.resolved_dags_folder} (tenant default)\n"
        f"  home    {settings.home}\n"
        f"  DB      {db}\n"
        f"  workers {settings.workers}\n"
        "Press Ctrl-C to stop; unfinished runs resume on the next start."
    )


def admin_notice(first: Bootstrapped) -> str:
    """The one time a generated admin password is shown."""
    if first.generated_password is None:
        return ""
    return (
        f"Created the superuser 'admin' with password {first.generated_password} (shown only now; "
        "set ZONDA_ADMIN_PASSWORD before the first start to choose it). The CLI on this machine "
        "uses the token in ZONDA_HOME/token.\n"
    )


def prepare(settings: Settings, *, embedded: bool = False) -> Bootstrapped:
    """Create ZONDA_HOME, bring the metadata DB schema up to date, and create what a first start needs:
    the `default` tenant (embedded, or when a DAG folder is configured) and the first superuser."""
    make_folders(settings)
    engine = make_engine(settings.resolved_db_url)
    try:
        upgrade(engine)
        svc = Services(engine=engine, settings=settings, waker=NullWaker())
        if embedded or settings.dags_folder is not None:
            ensure_default_tenant(svc)
        first = ensure_admin(svc)
    finally:
        engine.dispose()
    print(admin_notice(first), end="", flush=True)
    return first


def make_folders(settings: Settings) -> None:
    """ZONDA_HOME and the folders under it; ConfigError naming the one this user cannot create."""
    try:
        for folder in (settings.home, settings.logs_dir, settings.code_dir, settings.run_dir):
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the folder {exc.filename} ({exc.strerror}): choose a folder this user may "
            "write with --home (or ZONDA_HOME)"
        ) from exc


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
